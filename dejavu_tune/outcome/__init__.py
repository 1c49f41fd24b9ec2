"""The outcome maths, with no Ray, MLflow, Optuna or PyTorch: paired differences over
seeds (``paired``), the sequential confirmation's rule and its repeated confidence
intervals (``sequential``), what a design can detect (``power``), which way a metric is
better (``direction``) and how a number is written (``numbers``). The search, the
summary and ``python -m dejavu_tune.bench verdicts`` all decide through it."""
