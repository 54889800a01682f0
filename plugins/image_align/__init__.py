"""Planar image alignment under a homography: a template and an image of the same
plane, the homography as the displacements of the template's 4 corners (8 numbers, px).

Modules: :mod:`~image_align.homography` (corners <-> matrix, warping),
:mod:`~image_align.parameter_model`, :mod:`~image_align.photos` (the photographs),
:mod:`~image_align.synthesis` (template/image pairs), :mod:`~image_align.problem`,
:mod:`~image_align.metrics`, :mod:`~image_align.features` and
:mod:`~image_align.networks` (the learned solver), :mod:`~image_align.classical`
(Gauss-Newton and OpenCV ECC baselines).
"""
