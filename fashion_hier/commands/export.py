"""``fashion-hier export``: write a run as a SavedModel (serves JPEG/PNG bytes), TFLite or an OpenVINO IR."""
from __future__ import annotations

import argparse
import sys

from fashion_hier import cli_args, export
from fashion_hier.predict import Predictor


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier export --run R --format savedmodel|tflite --out PATH``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier export", description=export.__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=cli_args.run_or_model, help="run directory (or .keras file) to export")
    parser.add_argument("--format", required=True, choices=export.FORMATS)
    parser.add_argument("--out", required=True, type=cli_args.output_directory_or_file(".tflite"),
                        help="SavedModel directory, or for tflite a directory (model.tflite inside) or a .tflite file")
    parser.add_argument("--quantization", choices=export.QUANTIZATIONS, default="float16", help="tflite only")
    parser.add_argument("--precision", choices=("f32", "bf16", "int8"), default="f32",
                        help="openvino only: int8 is quantized with NNCF on the run's training photos")
    parser.add_argument("--independent", action="store_true",
                        help="savedmodel: arg-max per level instead of the joint best (category, subcategory) pair")
    args = parser.parse_args(argv)
    try:
        predictor = (Predictor.load(args.run, engine="openvino", precision=args.precision)
                     if args.format == "openvino" else Predictor.load(args.run))
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"fashion-hier export: {error}", file=sys.stderr)
        return 2
    if args.format == "openvino":
        written = export.export_openvino(predictor, args.out)
    elif args.format == "savedmodel":
        written = export.export_savedmodel(predictor, args.out, consistent=not args.independent)
    else:
        out = args.out if args.out.suffix == ".tflite" else args.out / f"model_{args.quantization}.tflite"
        written = export.export_tflite(predictor, out, quantization=args.quantization)
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
