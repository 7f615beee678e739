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
