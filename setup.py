"""The one compiled part of trainforge; everything else is declared in pyproject.toml.

``trainforge.engine._fused_norms`` reads a model's float32 CPU gradient norms in one call
(the gradient health check's cost on small models). It is optional: without a C compiler
the package installs and reads the norms with torch kernels.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "trainforge.engine._fused_norms",
            sources=["src/trainforge/engine/_fused_norms.c"],
            optional=True,
        )
    ]
)
