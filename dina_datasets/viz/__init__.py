"""Pictures (the `viz` extra: matplotlib, pillow).

- `figures`: attribution maps over their images, with their scores (`dina show`, the
  explorer, the demo);
- `scales`: how a map is put on a colour scale: its values, norm, the colour bar's ticks and
  the notes of degenerate and numerically zero maps;
- `charts`: the statistics' charts (critical-difference diagram, heatmaps) for the report.

matplotlib is imported inside the functions that draw.
"""
