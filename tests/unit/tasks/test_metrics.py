import math

import pytest
import torch

from dejavu_tune.tasks.metrics import (
    SegmentationMeter,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
)

# Hand-worked example, 3 classes, one ignored pixel (target 255):
#   target 0 0 1 | 1 2 255        pairs (target, pred): (0,0) (0,1) (1,1) (1,1) (2,0), ignored
#   pred   0 1 1 | 1 0   2
# rows = target, cols = pred:
#   [[1, 1, 0],
#    [0, 2, 0],
#    [1, 0, 0]]
# IoU_0 = 1 / (2 + 2 - 1) = 1/3, IoU_1 = 2 / (2 + 3 - 2) = 2/3, IoU_2 = 0 / (1 + 0 - 0) = 0
# mIoU = 1/3, pixel accuracy = 3 / 5
TARGET = torch.tensor([[0, 0, 1], [1, 2, 255]])
PRED = torch.tensor([[0, 1, 1], [1, 0, 2]])
CM = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 0]])


def test_confusion_matrix_by_hand_skips_ignored_pixel():
    cm = confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == torch.int64
    assert torch.equal(cm, CM)


def test_custom_ignore_index():
    target = torch.tensor([0, 1, -1])
    pred = torch.tensor([0, 0, 1])
    assert torch.equal(confusion_matrix(pred, target, 2, ignore_index=-1),
                       torch.tensor([[1, 0], [1, 0]]))


def test_iou_mean_iou_and_accuracy_by_hand():
    iou = iou_per_class(CM)
    assert iou.dtype == torch.float64
    assert iou.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert mean_iou(CM) == pytest.approx(1 / 3)
    assert pixel_accuracy(CM) == pytest.approx(3 / 5)


def test_two_class_half():
    # target 0 0 1 1, pred 0 1 1 1 -> [[1, 1], [0, 2]]: IoU_0 = 1/2, IoU_1 = 2/3
    cm = confusion_matrix(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]), 2)
    assert cm.tolist() == [[1, 1], [0, 2]]
    assert iou_per_class(cm).tolist() == pytest.approx([1 / 2, 2 / 3])
    assert mean_iou(cm) == pytest.approx(7 / 12)


def test_absent_class_is_nan_and_skipped_by_the_mean():
    cm = confusion_matrix(PRED, TARGET, 4)  # class 3 in neither target nor prediction
    iou = iou_per_class(cm)
    assert math.isnan(iou[3])
    assert iou[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert mean_iou(cm) == pytest.approx(1 / 3)


def test_class_only_predicted_counts_as_zero_not_nan():
    cm = confusion_matrix(torch.tensor([1, 1]), torch.tensor([0, 0]), 2)
    assert iou_per_class(cm).tolist() == [0.0, 0.0]


def test_empty_matrix_gives_zero_not_nan():
    cm = confusion_matrix(torch.tensor([1]), torch.tensor([255]), 3)
    assert int(cm.sum()) == 0
    assert iou_per_class(cm).isnan().all()
    assert mean_iou(cm) == 0.0
    assert pixel_accuracy(cm) == 0.0


@pytest.mark.parametrize("pred, target, message", [
    (torch.tensor([0, 3]), torch.tensor([0, 1]), r"class ids must lie in \[0, 3\)"),
    (torch.tensor([0, 1]), torch.tensor([0, -2]), r"class ids must lie in \[0, 3\)"),
    (torch.tensor([0, 1]), torch.tensor([0, 1, 1]), "pred has shape"),
    (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "must hold integer class ids"),
])
def test_bad_inputs_raise(pred, target, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(pred, target, 3)


def test_num_classes_validated():
    with pytest.raises(ValueError, match="num_classes=0 is not allowed"):
        confusion_matrix(PRED, TARGET, 0)


def test_meter_accepts_logits_and_predictions_and_accumulates():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 5, 6, generator=gen)
    target = torch.randint(0, 3, (4, 5, 6), generator=gen)
    target[0, 0, 0] = 255
    whole = confusion_matrix(logits.argmax(1), target, 3)

    meter = SegmentationMeter(3)
    meter.update(logits[:2], target[:2])  # logits: argmax taken
    meter.update(logits[2:].argmax(1), target[2:])  # class ids as they are
    assert torch.equal(meter.confusion, whole)
    result = meter.compute()
    assert set(result) == {"miou", "pixel_acc"}
    assert result["miou"] == pytest.approx(mean_iou(whole))
    assert result["pixel_acc"] == pytest.approx(pixel_accuracy(whole))

    meter.reset()
    assert int(meter.confusion.sum()) == 0
    meter.update(PRED.unsqueeze(0), TARGET.unsqueeze(0))
    assert meter.compute() == pytest.approx({"miou": 1 / 3, "pixel_acc": 3 / 5})


def test_meter_rejects_wrong_channel_count():
    meter = SegmentationMeter(3)
    with pytest.raises(ValueError, match="logits have 4 channels: expected num_classes=3"):
        meter.update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.int64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs():
    cm = confusion_matrix(PRED.cuda(), TARGET.cuda(), 3)
    assert cm.device.type == "cuda"
    assert torch.equal(cm.cpu(), CM)
    meter = SegmentationMeter(3)
    meter.update(PRED.cuda().unsqueeze(0), TARGET.cuda().unsqueeze(0))
    assert meter.compute() == pytest.approx({"miou": 1 / 3, "pixel_acc": 3 / 5})
