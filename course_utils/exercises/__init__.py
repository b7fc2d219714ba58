"""Checks students run on their exercise answers: specific feedback, not just pass/fail.

Each check prints what is right, or raises `ExerciseError` with what is wrong and a hint.
An answer left as the placeholder `...` (or a solution cell that still raises
NotImplementedError) is reported as "not done yet". One module per chapter (`ch01` ...);
notebooks call them through this package: `exercises.check_03_feature_extraction(...)`.
"""
from .harness import ExerciseError, NotDone, passed
from .ch01 import check_01_small_model, check_01_topk, check_01_two_class
from .ch02 import check_02_normalize, check_02_channel_stats, check_02_no_flip_augmentation
from .ch03 import (check_03_feature_extraction, check_03_images_per_class, check_03_custom_dataset,
                   check_exercise_4, digits_dataset, exercise_folder)
from .ch04 import check_exercise_1, check_exercise_5
from .ch05 import check_05_stable_lr, check_exercise_2, check_05_rescaled_momentum
from .ch06 import check_exercise_3, check_06_images_needed, mystery_histories_06, check_06_diagnoses
from .ch07 import check_exercise_6, check_07_adabn, check_07_adabn_images
from .ch08 import check_08_replay_buffer, check_08_ewc_penalty, check_08_gate
