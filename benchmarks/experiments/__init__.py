"""Small training experiments the course notes quote: each script trains tiny models on CPU,
prints a Markdown table of what it measured and saves one plot.

    python benchmarks/experiments/positions.py        # week 3: 1x, 2x, 4x the training length
    python benchmarks/experiments/capacity.py         # week 4: heads x layers vs loss and parameters
    python benchmarks/experiments/dropout.py          # week 7: under- and over-fitting, dropout
    python benchmarks/experiments/mixed_precision.py  # week 7: fp32, bf16, fp16 with a GradScaler

Every script takes ``--out DIR`` (default ``runs/experiments/``), ``--seed``, ``--seeds N`` (train
every configuration with N seeds and report mean ± sd; the notes quote ``--seeds 3``) and
``--quick`` (a run of a few seconds that only shows the script works: its figures mean nothing). They use the
reference package ``solutions``; the figures depend on the machine and the seed: read them, do
not assert them.
"""
