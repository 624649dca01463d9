"""The worker: the model it runs, and the memory its decodes may hold."""
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from imgsite.settings.core import VAR_DIR
from imgsite.settings.env import envint, envstr

# --- The classifier. ---
CLASSIFIER_MODEL = envstr("CLASSIFIER_MODEL", "efficientnet_lite0")
# LiteRT runs the same converted model faster than Keras on CPU, in less memory
# (bench/README.md); TensorFlow stays the source of the model. ResNet50 is Keras-only.
# litert-int8 (EfficientNet only) runs an int8 model, faster still, but its top label differs
# from the float model's too often to be the default (bench/README.md, bench/int8.py).
CLASSIFIER_RUNTIME = envstr("CLASSIFIER_RUNTIME", "litert" if CLASSIFIER_MODEL == "efficientnet_lite0" else "keras")
if CLASSIFIER_RUNTIME not in ("keras", "litert", "litert-int8"):
    raise ImproperlyConfigured(f"CLASSIFIER_RUNTIME={CLASSIFIER_RUNTIME!r} must be keras, litert or litert-int8")
MODEL_DIR = Path(envstr("MODEL_DIR", str(VAR_DIR / "models")))
RESNET50_WEIGHTS = envstr("RESNET50_WEIGHTS", str(MODEL_DIR / "resnet50_imagenet.weights.h5"))
CLASSIFIER_TOP_K = envint("CLASSIFIER_TOP_K", 5)
# Inference threads per worker process; 0 means one per core. With several worker
# processes on one machine, keep processes × threads ≤ cores.
CLASSIFIER_THREADS = envint("CLASSIFIER_THREADS", 0)

# Per worker process: the memory its decodes may hold at once (each waits for its share, estimated
# from the header), and the most one image may need; a larger one fails with a reason.
DECODE_MEMORY_BUDGET = envint("DECODE_MEMORY_BUDGET", 1024 * 1024**2)
DECODE_MAX_IMAGE_BYTES = envint("DECODE_MAX_IMAGE_BYTES", 768 * 1024**2)
if not 0 < DECODE_MAX_IMAGE_BYTES <= DECODE_MEMORY_BUDGET:
    raise ImproperlyConfigured("Need 0 < DECODE_MAX_IMAGE_BYTES <= DECODE_MEMORY_BUDGET: a larger image could "
                               "never be decoded")
# A prefork pool process whose resident set ends a task above this many bytes is replaced (what its
# allocator kept after large decodes is given back to the machine).
WORKER_MAX_MEMORY_PER_CHILD = envint("WORKER_MAX_MEMORY_PER_CHILD", DECODE_MEMORY_BUDGET + 512 * 1024**2)
if WORKER_MAX_MEMORY_PER_CHILD <= DECODE_MEMORY_BUDGET:
    raise ImproperlyConfigured("WORKER_MAX_MEMORY_PER_CHILD must be above DECODE_MEMORY_BUDGET (and the model)")
CELERY_WORKER_MAX_MEMORY_PER_CHILD = WORKER_MAX_MEMORY_PER_CHILD // 1024  # Celery counts KiB
