"""The Apache Beam side of tf_style, the only code that imports apache_beam (`pip install tf_style[beam]`).

`tf_style.beam.pipeline` builds and runs the batched stylization as a pipeline; `tf_style.beam_main` is its
command line.
"""
