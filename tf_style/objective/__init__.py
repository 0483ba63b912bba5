"""The objective: the pure loss math, the loss terms, their targets, the region masks and the faces."""
