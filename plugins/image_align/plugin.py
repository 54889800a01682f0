"""Hook implementations of the image_align plugin: problem ``image_align``, parameter model
``corners``, features ``warped_grid`` and ``correlation_volume`` (learned), regressors
``align_cnn`` and ``flow_fit``.

The sampler is the core's ``gaussian_union``; see ``examples/image_align.yaml``.
Components are imported inside the hooks, so importing the plugin stays cheap."""

from __future__ import annotations

from selfiter.hookspecs import hookimpl


@hookimpl
def register_problems(register):
    from image_align.problem import ImageAlign

    register("image_align", ImageAlign)


@hookimpl
def register_parameter_models(register):
    from image_align.parameter_model import CornerModel

    register("corners", CornerModel)


@hookimpl
def register_feature_extractors(register):
    from image_align.features import CorrelationVolumeExtractor, WarpedGridExtractor

    register("warped_grid", WarpedGridExtractor)
    register("correlation_volume", CorrelationVolumeExtractor)


@hookimpl
def register_regressors(register):
    from image_align.networks import AlignHead, FlowFitHead

    register("align_cnn", AlignHead)
    register("flow_fit", FlowFitHead)
