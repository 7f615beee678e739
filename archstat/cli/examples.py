"""The examples each subcommand's --help ends with (and the top level's)."""

EXAMPLES = {
    "main": """\
examples:
  archstat zoo                                          every named model: params, GMACs, top-1
  archstat report vgg16                                 per-layer table, CS231n style
  archstat report mobilenet_v3_large -o mnv3.md         Markdown report (format from the suffix)
  archstat report efficientnet --arg variant=b4         a family spec with its arguments
  archstat report my_model.yaml --batch 8 --format json a spec file of your own
  archstat report model.onnx                            an ONNX file (pip install 'archstat[onnx]')
  archstat import model.onnx -o model.yaml              an ONNX file as a readable spec
  archstat compare resnet50 resnext50_32x4d wide_resnet50_2 regnet_y_8gf convnext_tiny
  archstat conventions resnet50                         every other tool's number, and why it differs
  archstat layers                                       every layer type and how it is counted
  archstat graph resnet50 -o resnet50.png               draw the DAG (or export DOT)
  archstat reproduce                                    regenerate the classic tables into reports/
  archstat profile alexnet --backward                   measured time per layer, roofline, memory
  archstat sweep resnet18 --batch 1 2 4 8               time per image and memory vs batch size
  archstat space regnet --samples 5000 --workers 2 --plot regnet_space.png   a design space: EDFs
  archstat search regnet --budget 'macs<=400e6' --objective params:max      search it under budgets

A MODEL is a zoo name (archstat zoo lists them), a spec file (.yaml or .json) or an ONNX
file (.onnx); PyTorch modules come in from Python: archstat.from_torch(module, input_shape).
Conventions: tensors are NCHW; a MAC is one multiply-accumulate of conv or linear layers;
FLOPs are 2 per MAC plus each layer's elementwise work (see 'archstat layers').""",
    "report": """\
examples:
  archstat report vgg16
  archstat report vgg16 --batch 8 --dtype float16
  archstat report alexnet_lecture --format md -o alexnet.md
  archstat report vgg16 --input 3 448 448                  resolution study
  archstat report efficientnet --arg variant=b4            a family spec's own arguments
  archstat report lenet5 --format csv > lenet5.csv
  archstat report resnet50 --convention fvcore             fvcore's count per layer and in total

The table shows per layer: output shape (with batch), parameters, MACs, FLOPs, output
elements and the new memory the output needs; then the totals explained: the CS231n
forward-memory sum and the peak live activations.""",
    "conventions": """\
examples:
  archstat conventions resnet50                        every tool's total, ratio and why
  archstat conventions resnet50 --explain ptflops      where ptflops' number comes from, by layer type
  archstat report resnet50 --convention fvcore         fvcore's count per layer

Each tool's rules (torchinfo, fvcore, ptflops, thop, calflops, torchscan, FlopCounterMode,
onnx-tool, Keras) are written per layer type in archstat/conventions/, with the tool's
version and source lines; they reproduce the tools' own totals exactly on torchvision's
models run as the tools run them (batch 1, eval mode, auxiliary heads off).""",
    "compare": """\
examples:
  archstat compare vgg11 vgg11_lrn vgg13 vgg16_c vgg16 vgg19
  archstat compare resnet50 resnext50_32x4d wide_resnet50_2 regnet_y_8gf convnext_tiny
  archstat compare specs/*.yaml --format csv -o models.csv""",
    "zoo": """\
examples:
  archstat zoo                                every named model, grouped by family
  archstat zoo --family efficientnet          one family's variants
  archstat zoo --format csv -o zoo.csv        exact integers, published figures beside them

Each model is analysed at its own input size (the crop its published weights are evaluated
at). Check says whether archstat reproduces the publisher's own counts: torchvision's
num_params exactly, and its _ops (GMACs) at the digits torchvision prints.""",
    "graph": """\
examples:
  archstat graph resnet50 -o resnet50.png                     the DAG, layered, branches side by side
  archstat graph googlenet -o googlenet.svg --color-by macs
  archstat graph vgg16 -o vgg16.dot                           Graphviz DOT (render: dot -Tpdf vgg16.dot)
  archstat graph densenet121 --collapse -o densenet.pdf        one box per block: reads on a slide
  archstat graph resnet50 -o resnet50.html                    interactive: pan, zoom, hover for numbers
  archstat graph lenet5                                       DOT on standard output

Pointwise layers (batch norm, ReLU, ...) are drawn inside the box of the layer before
them ("conv1 +bn+relu"); --no-collapse draws every layer.""",
    "reproduce": """\
examples:
  archstat reproduce                          regenerate every report into reports/
  archstat reproduce --out /tmp/reports --no-figures

Writes VGG Table 2, the CS231n VGG-16 table with its totals reconciled, the AlexNet layer
table, why convolution, complexity vs accuracy (Canziani et al. 2016) and their figures,
each with published vs computed numbers and sources, indexed by README.md.""",
    "calibrate": """\
examples:
  archstat calibrate                      measure this machine once: GEMM GFLOP/s, memory GB/s
  archstat calibrate --quick --dtype float32
  archstat calibrate --show --format json print the cached calibration (measures nothing)

The GEMM peak is the best np.matmul rate on a large square product (2 n^3 FLOPs); the
memory bandwidth the best np.copyto rate (bytes read + written). They are the roofs of
'archstat profile'. Cached under $XDG_CACHE_HOME/archstat (~/.cache/archstat), one file
per machine (CPU, cores, BLAS and its threads, NumPy version).""",
    "profile": """\
examples:
  archstat profile alexnet_lecture --batch 8 --repeat 5 --warmup 1 --backward
  archstat profile vgg16 --format csv -o vgg16_profile.csv --plot vgg16_profile.png
  archstat profile lenet5 --dtype float64 -q
  archstat profile alexnet vgg16 resnet18 --plot ops.png
                                          several models: MACs vs measured time, linear fit and R^2

Each layer's forward (and with --backward, backward) time is the median over the repeats,
with min-max beside; GFLOP/s = the analysis' FLOPs / time; FLOP/B = FLOPs / the minimum
bytes moved (inputs + weights + output); the roofline (calibrated GEMM peak and memory
bandwidth, see 'archstat calibrate') says whether a layer is compute- or memory-bound.
Peak memory is measured with tracemalloc on one untimed pass, beside the analysis'
prediction. --plot FILE.png writes FILE.png (time per layer), FILE_roofline.png and
FILE_ops.png (MACs vs time); with several specs, FILE.png is MACs vs time across models.
Ctrl-C stops cleanly and prints what was measured (exit 130).""",
    "sweep": """\
examples:
  archstat sweep resnet18 --batch 1 2 4 8 16
  archstat sweep alexnet --backward --plot alexnet_sweep.png
  archstat sweep vgg16 --batch 1 2 4 --format csv -o vgg16_sweep.csv

Every batch size is checked against --memory-limit before anything runs.""",
    "import": """\
examples:
  archstat import model.onnx -o model.yaml       a readable spec of an ONNX file, names from its graph
  archstat import model.onnx --input 3 224 224   a file with open (dynamic) sizes
  archstat import model.onnx --allow-unknown     keep nodes archstat has no type for, uncounted
  archstat import resnet50 -o resnet50.yaml      a zoo model written out flat, one line per layer

Any command that takes a model takes an .onnx file as well (archstat report model.onnx).""",
    "completion": """\
examples:
  eval "$(archstat completion bash)"       complete archstat's commands, options and zoo names
  archstat completion bash >> ~/.bashrc    keep it for every new shell (zsh: ~/.zshrc, 'zsh')""",
    "space": """\
examples:
  archstat space my_space.yaml --grid -o grid.csv               every configuration
  archstat space regnet --samples 100000 --seed 0 -o s.parquet  a seeded sample (CSV without pyarrow)
  archstat space regnet --samples 100000 --workers 2            local processes
  archstat space regnet --samples 1000000 --scheduler tcp://host:8786 -o s.parquet   a Dask cluster
  archstat space regnet --samples 5000 --plot space.png         EDFs of params, MACs, peak memory; scatter
  archstat space regnet --samples 200 --measure 20 --plot t.png time 20 of them on the engine too
  archstat space regnet --samples 100000 -o s.csv --resume      finish an interrupted run
  archstat space efficientnet --grid --levels 3                 3 points of each continuous dimension

The spec's 'space:' section names the args that vary: {choice: [...]}, {int: [lo, hi]},
{range: [lo, hi, step]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]}. One row per
configuration: its args, then params, MACs, FLOPs, peak activation memory, forward memory,
layers, the output's receptive field, and its error when it is invalid. Row i of a sample is
drawn from its own generator (seed, i): same seed, same rows, whatever runs them. With -o, the
rows done so far are checkpointed to FILE.checkpoint.csv as the run goes (removed when it
completes); --resume finishes an interrupted run without recomputing them. --measure times
configurations on the workers, each recording its machine; local workers run side by side with
their share of the cores (--workers 1 gives the steadiest times).""",
    "search": """\
examples:
  archstat search regnet --budget 'macs<=400e6' --budget 'peak_activation_bytes<=20e6' \\
                         --objective params:max --population 64 --generations 50 --seed 0
  archstat search my_space.yaml --budget 'params<2M' --objective macs:min
  archstat search regnet --budget 'macs<=1.6G' --objective rf_h:max --workers 2 -o history.csv

Regularized evolution (Real et al. 2019): tournaments of --sample-size among the population,
the winner's child differs in one argument, the oldest member dies. A discrete space no larger
than population x (generations + 1) is searched exhaustively instead (--strategy to choose).
Every configuration printed meets every budget. Budgets: METRIC OP NUMBER, OP one of <= < >= >
== !=, NUMBER like 400e6 or 400M; metrics: params, macs, flops, peak_activation_bytes,
forward_memory_bytes, layers, rf_h, rf_w (and numeric args of the space).""",
    "layers": """\
examples:
  archstat layers                    fields and counting rule of every layer type
  archstat layers --format md        the same as a Markdown page (docs/layers.md)""",
}
