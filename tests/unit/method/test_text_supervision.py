import sys
import types

import pytest
import torch

from dejavu_tune.config import ConfigError, TrainConfig
from dejavu_tune.method.text_supervision import (
    describe_scene,
    load_text_encoder,
    text_supervision_loss,
)
from dejavu_tune.plugins import PluginError


class ColourEncoder:
    """A tiny but real joint embedding: an image is its mean (R, G, B); a text is the
    sum of the colour words it contains."""

    words = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}

    def encode_images(self, images):
        return (images + 1).mean((2, 3))

    def encode_texts(self, texts):
        return torch.tensor([[sum(self.words[w][k] for w in self.words if w in t)
                              for k in range(3)] for t in texts])


def test_describe_scene_lists_present_classes_in_id_order():
    labels = torch.tensor([[[2, 0], [255, 2]], [[1, 1], [1, 1]], [[255, 255], [255, 255]]])
    names = ("sky", "road", "car")
    assert describe_scene(labels, names) == ["a photo of sky and car", "a photo of road",
                                             "a photo"]
    three = torch.tensor([[[0, 1, 2]]])
    assert describe_scene(three, names) == ["a photo of sky, road and car"]


def test_loss_is_one_minus_cosine():
    encoder = ColourEncoder()
    red = torch.full((1, 3, 2, 2), -1.0)
    red[:, 0] = 1.0  # pure red image: embedding (2, 0, 0)
    assert text_supervision_loss(encoder, red, ["a red car"]).item() == pytest.approx(0.0)
    assert text_supervision_loss(encoder, red, ["a blue sky"]).item() == pytest.approx(1.0)
    both = text_supervision_loss(encoder, red, ["red and green"]).item()
    assert both == pytest.approx(1 - 1 / 2 ** 0.5)


def test_ts_needs_an_encoder_and_the_encoder_needs_both_methods(monkeypatch):
    with pytest.raises(ConfigError, match="dejavu.loss.ts_weight=0.3 is not allowed: expected 0 "
                                          "unless dejavu.loss.ts_encoder"):
        TrainConfig().replace(**{"dejavu.loss.ts_weight": 0.3})
    module = types.ModuleType("my_encoders")
    module.colours, module.broken = ColourEncoder, lambda: object()
    monkeypatch.setitem(sys.modules, "my_encoders", module)
    assert isinstance(load_text_encoder("my_encoders:colours", torch.device("cpu")), ColourEncoder)
    with pytest.raises(PluginError, match="without encode_images"):
        load_text_encoder("my_encoders:broken", torch.device("cpu"))


def test_trainer_logs_the_ts_part(monkeypatch):
    from dejavu_tune.train.trainer import Trainer

    module = types.ModuleType("my_encoders")
    module.colours = ColourEncoder
    monkeypatch.setitem(sys.modules, "my_encoders", module)
    cfg = TrainConfig().replace(**{
        "data.num_train": 8, "data.num_val": 4, "data.image_size": 32, "optim.batch_size": 4,
        "optim.epochs": 1, "dejavu.loss.gamma1": 0.0, "dejavu.crm.steps": 2,
        "dejavu.crm.init": "scratch",
        "dejavu.loss.ts_weight": 0.3, "dejavu.loss.ts_encoder": "my_encoders:colours"})
    trainer = Trainer(cfg)
    parts = trainer.train_step(trainer.first_batch(4))
    assert 0.0 <= parts["ts_loss"] <= 2.0
    assert parts["loss"] == pytest.approx(parts["task_loss"] + parts["dejavu_loss"]
                                          + 0.3 * parts["ts_loss"], rel=1e-5)
