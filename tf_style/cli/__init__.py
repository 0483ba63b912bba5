"""The command-line layer, the only code that imports absl: one module per program (`main`: stylize, `export`,
`beam`), the flags they all define from (`flags`), and what they share (`support`: exit statuses, one-line
errors, quiet start-up). `tf_style.main`, `tf_style.export` and `tf_style.beam_main` are thin modules that hand
over to these, so that `python -m` and the console scripts stay as documented."""
