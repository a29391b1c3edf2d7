"""X-ray physics from xraylib: line families, and synthetic cubes built from them."""
