"""Training the start's network: synthetic bodies (``synth``), the training loop (``train``),
rendered test bodies (``render_bodies``), the detector's keypoint calibration
(``calibrate_keypoints``), a bundle for GPU machines (``gpu_bundle``) and the recipe
(``recipe.sh``). Imports ``inference``; nothing in ``inference`` imports this package."""
