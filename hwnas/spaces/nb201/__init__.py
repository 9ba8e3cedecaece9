"""NAS-Bench-201 (Dong & Yang, ICLR 2020) as HW-NAS-Bench builds it for CIFAR.

    arch.py      NB201Arch, the cell's 6 edges, and NAS-Bench-201's cell string
    ops.py       its OpSpecs (stem, live edge ops, node sums, reductions, head)
    blocks.py    the static torch modules behind the ops, and the DAG cell
    space.py     NB201Space (registered as "nb201")
"""
