"""`dina show`: maps over their images, one config or a grid of several."""

from __future__ import annotations

import argparse

from dina_datasets.layout import DEFAULT_DATA_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("configs", nargs="+", metavar="CONFIG",
                        help="configs to show as columns, e.g. DinoV2-Rise ResNet50-Saliency")
    parser.add_argument("--index", type=int, nargs="+", required=True, metavar="I",
                        help="record indices to show as rows")
    parser.add_argument("--data-url", default=DEFAULT_DATA_URL,
                        help="bucket-shaped folder or URL (default: %(default)s)")
    parser.add_argument("--images", metavar="SRC",
                        help="the images (folder or kecam imagenet_data.json) to draw under "
                        "the maps; without it the maps are drawn alone")
    parser.add_argument("--assume-order", action="store_true",
                        help="pair records that carry no image_id (the published files) with "
                        "the images of a folder by position; without it they are paired only "
                        "through the kecam json that produced them")
    parser.add_argument("--out", default="dina-show.png", metavar="FILE",
                        help="picture to write: .png, .jpg, .pdf or .svg (default: "
                        "%(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out even when it is not a picture of its format (a "
                        "user's file of another kind)")


def run(args: argparse.Namespace) -> int:
    from dina_datasets.cli import check_outputs
    from dina_datasets.viz import figures

    kind = figures.image_format(args.out)  # a bad suffix fails before anything is read
    check_outputs({args.out: figures.SIGNATURES[kind]}, overwrite=args.overwrite,
                  storage_options=None)  # so does an output that may not be written
    rows = figures.load_panels(args.configs, args.index, data_url=args.data_url,
                               images=args.images, assume_order=args.assume_order,
                               storage_options=args.storage_options)
    out = figures.draw(rows, args.out)
    known = sum(p.image is not None for row in rows for p in row)
    print(f"wrote {out}: {len(rows)} image(s) x {len(rows[0])} config(s)"
          + ("" if known else " (maps alone: pass --images to draw them over their images)"))
    return 0
