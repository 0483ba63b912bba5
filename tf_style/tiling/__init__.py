"""Tiling: the tiles' geometry and the tiled objective, which gives the untiled loss and gradient tile by tile."""
