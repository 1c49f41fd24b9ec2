"""The outcome maths, with no Ray, MLflow, Optuna or PyTorch: paired differences over
seeds (``paired``), the sequential confirmation's rule and its repeated confidence
intervals (``sequential``), and what a design can detect (``power``). The search, the
summary and ``python -m dejavu_tune.bench verdicts`` all decide through it."""
