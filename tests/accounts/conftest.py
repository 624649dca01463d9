from tests.web.conftest import bob, fresh_throttle_counts  # noqa: F401  (a second user; throttles count anew)
