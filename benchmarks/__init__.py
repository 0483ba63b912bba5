"""Developer tooling: the step, memory and throughput benchmarks (`python -m benchmarks.bench`, from the
repository's root). Not part of the installed package: they measure tf_style, they are not tf_style."""
