"""The optimization: the one step (core), one level's run, the pyramid's levels, the coarse-to-fine runner and
checkpoints."""
