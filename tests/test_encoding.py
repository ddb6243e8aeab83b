import numpy as np
import pytest

from dsqn.encoding import Encoder
from dsqn.kernels.fixed_point import quantize_threshold, weight_to_int


def test_two_neuron_encoding_splits_sign_and_scales():
    enc = Encoder(kind="two_neuron", obs_scale=(2.0, 1.0), frac_bits=5)
    p = enc.encode(np.array([1.0, -0.5]))
    # x/scale = (0.5, -0.5) -> positive half (0.5, 0), negative half (0, 0.5), times 32
    assert p.tolist() == [16, 0, 0, 16]
    assert p.dtype == np.int32
    assert enc.channels == 4


def test_two_neuron_encoding_clips_to_payload_range():
    enc = Encoder(kind="two_neuron", obs_scale=(1.0,), frac_bits=5, payload_bits=8)
    assert enc.encode(np.array([100.0])).tolist() == [255, 0]
    assert enc.encode(np.array([-100.0])).tolist() == [0, 255]


def test_direct_encoding_is_signed():
    enc = Encoder(kind="direct", obs_scale=(1.0, 1.0), frac_bits=4)
    assert enc.encode(np.array([0.5, -0.25])).tolist() == [8, -4]
    assert enc.encode(np.array([100.0, -100.0])).tolist() == [127, -128]


def test_encoder_batches_and_rejects_wrong_width():
    enc = Encoder(obs_scale=(1.0, 1.0, 1.0))
    assert enc.encode(np.zeros((5, 3))).shape == (5, 6)
    with pytest.raises(ValueError, match="3"):
        enc.encode(np.zeros(4))


def test_encoder_roundtrips_through_dict():
    enc = Encoder(kind="direct", obs_scale=(2.4, 3.0), frac_bits=6, payload_bits=10)
    assert Encoder.from_dict(enc.to_dict()) == enc


def test_bad_encoder_settings_are_rejected():
    with pytest.raises(ValueError):
        Encoder(kind="rate", obs_scale=(1.0,))
    with pytest.raises(ValueError):
        Encoder(obs_scale=(0.0,))


@pytest.mark.lava
def test_weight_quantization_matches_slayer_quantize_8bit():
    import torch

    from dsqn.extras import import_lava_dl

    cuba = import_lava_dl("slayer.neuron.cuba")

    neuron = cuba.Neuron(threshold=1.0, current_decay=0.5, voltage_decay=0.5)
    w = torch.linspace(-5, 5, 1001)
    slayer_int = neuron.quantize_8bit(w, descale=True).numpy()
    assert np.array_equal(weight_to_int(w.numpy()), slayer_int.astype(np.int32))
    assert weight_to_int(np.array([10.0, -10.0])).tolist() == [254, -256]


def test_threshold_grid():
    assert quantize_threshold(0.25) == 0.25
    assert quantize_threshold(0.2) == 13 / 64
    with pytest.raises(ValueError):
        quantize_threshold(0.001)
