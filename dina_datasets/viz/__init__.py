"""Pictures (the `viz` extra: matplotlib, pillow).

- `figures`: attribution maps over their images, with their scores (`dina show`, the
  explorer, the demo);
- `charts`: the statistics' charts (critical-difference diagram, heatmaps) for the report.

matplotlib is imported inside the functions that draw.
"""
