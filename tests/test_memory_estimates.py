"""Memory totals against hand-derived small cases."""
import archstat


def test_training_memory_counts_what_dropout_allocates_in_training():
    spec = {"input": [10], "layers": [{"type": "linear", "out_features": 100, "name": "fc"},
                                      {"type": "dropout", "p": 0.5, "name": "drop"}]}
    t = archstat.analyze(spec, optimizer="sgd").totals
    # inference: input 10 x 4 B + fc 100 x 4 B; dropout is a view of fc's output
    assert t["forward_memory_bytes"] == 40 + 400 == 440
    # training adds dropout's own output (400 B) and its one-byte mask (100 B); weights and
    # their gradients 2 x (10 x 100 + 100) x 4 B = 8,800; the largest transient gradient is
    # one layer's output and input together: (100 + 100) x 4 B = 800
    assert t["training_memory_bytes"] == 440 + 500 + 8_800 + 800 == 10_540
    # adam keeps two more parameter-sized copies: 2 x 4,400 B
    adam = archstat.analyze(spec, optimizer="adam").totals["training_memory_bytes"]
    assert adam == 10_540 + 8_800


def test_a_training_only_head_counts_in_training_memory_not_at_inference():
    # an auxiliary classifier (as GoogLeNet's and Inception-v3's): it runs only in training
    spec = {"input": [10], "layers": [{"type": "linear", "out_features": 100, "name": "fc"},
                                      {"type": "linear", "out_features": 5, "name": "head", "training_only": True},
                                      {"type": "linear", "out_features": 3, "name": "out", "inputs": "fc"}]}
    t = archstat.analyze(spec, optimizer="sgd").totals
    # inference: input 10 x 4 B + fc 100 x 4 B + out 3 x 4 B; the head's 5 outputs are not stored
    assert t["forward_memory_bytes"] == 40 + 400 + 12 == 452
    # peak: input and fc's output while fc runs (out runs after the input is freed: 400 + 12)
    assert t["peak_activation_bytes"] == 40 + 400 == 440
    # MACs: fc 10 x 100 + out 100 x 3 at inference; the head's 100 x 5 only in training
    assert (t["macs"], t["training_only_macs"]) == (1_000 + 300, 500)
    # training keeps the head's output too (5 x 4 B); parameters fc 1,100 + head 505 + out 303 =
    # 1,908, with gradients 2 x 1,908 x 4 B = 15,264; the largest transient gradient is fc's
    # output and input together: (100 + 10) x 4 B = 440
    assert t["params"] == 1_100 + 505 + 303 == 1_908
    assert t["training_memory_bytes"] == 452 + 20 + 15_264 + 440 == 16_176
