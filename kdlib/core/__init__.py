"""The foundation every other package stands on: no losses, no models, no data sets.

Modules (and the notebooks that teach them):

* ``paths``: where caches and results live (every notebook)
* ``profiles``: the ci / laptop / gpu sizes of a notebook, seeding (every notebook)
* ``results``: the results JSON each notebook writes (every notebook)
* ``validate``: hyperparameter and value checks, and the switch that keeps value checks out of training steps
* ``files``: checksums, cache names, writable folders and atomic writes of cached files
* ``inference``: batched inference in eval mode (02-04)
* ``metrics``: accuracy, errors, agreement, macro-F1, ECE (02-04)
* ``calibration``: temperature scaling (03)
* ``stats``: mean, spread and noise of a comparison over seeds (03, 04)
* ``serving``: latency percentiles, parameters, size (02, 04, 09)
* ``teacher_cache``: teacher outputs by sample index, trained teachers cached by recipe (02 onwards)
* ``fit``: the one training loop (02-07)
* ``schedule``: its batches (by sample index), optimisers and warm-up + cosine learning rate
* ``parallel``: ``fit`` data-parallel over processes (``torchrun``, ``accelerate launch``): shards, gradient means
* ``concurrent``: several small models trained at once on a CPU, one thread each (02, 06)
* ``cascade``: a student that hands unsure requests to its teacher: confidence, routing, threshold sweeps (09)
* ``costs``: cost per request and per success, the break-even volume of distillation (09)
* ``scorecard``: the two scorecards, model quality and system value, side by side (09)
* ``ensemble``: K copies of one model trained as one batched model (torch.func), seeds and sweeps at once (02)
* ``budget``: GPU seconds of a profile from work counted on the CPU, max(launch floor, FLOPs / throughput)
  (the gpu profiles of 02-11, ``benchmarks/gpu_budget.py``)
"""
from kdlib.core.calibration import fit_temperature, apply_temperature
from kdlib.core.concurrent import concurrently
from kdlib.core.cascade import confidence, route, cascade_logits, threshold_sweep, oracle_route, choose_threshold
from kdlib.core.scorecard import quality_card, system_card, scorecard_table
from kdlib.core.costs import (cost_per_request, cost_per_1k, cost_per_success, break_even_requests,
                              cumulative_cost)
from kdlib.core.files import sha256sum, atomic_write, atomic_folder, check_cache_name, check_writable
from kdlib.core.fit import (History, cross_entropy_step, index_batches, make_optimizer, warmup_cosine, select,
                            to_device, train_step, fit)
from kdlib.core.inference import eval_mode, predict
from kdlib.core.metrics import (error_count, accuracy, agreement, per_class_accuracy, reliability_bins,
                                expected_calibration_error, macro_f1)
from kdlib.core.paths import data_dir, results_dir
from kdlib.core.profiles import Profile, get_profile, default_profile_name, seed_everything, seeded, PROFILES
from kdlib.core.results import device_name, Run
from kdlib.core.serving import synchronize, param_count, model_size_mb, latency, call_latency, serving_report
from kdlib.core.stats import mean_std, noise_of_difference, compare, paired_bootstrap_se, table
from kdlib.core.teacher_cache import fingerprint, TeacherCache, by_index, recipe_key, prepare_teacher
from kdlib.core.validate import (value_checks, values_checked, check_number, check_temperature, check_finite,
                                 check_labels, whole)

__all__ = ["fit_temperature", "apply_temperature", "concurrently", "confidence", "route", "cascade_logits",
           "threshold_sweep", "oracle_route", "choose_threshold", "cost_per_request", "cost_per_1k",
           "cost_per_success", "break_even_requests", "cumulative_cost", "quality_card", "system_card",
           "scorecard_table", "sha256sum", "atomic_write", "atomic_folder", "check_cache_name", "check_writable",
           "History", "cross_entropy_step", "index_batches", "make_optimizer", "warmup_cosine", "select", "to_device",
           "train_step", "fit", "eval_mode", "predict", "error_count", "accuracy", "agreement", "per_class_accuracy",
           "reliability_bins", "expected_calibration_error", "macro_f1", "data_dir", "results_dir", "Profile",
           "get_profile", "default_profile_name", "seed_everything", "seeded", "PROFILES", "device_name", "Run",
           "synchronize", "param_count", "model_size_mb", "latency", "call_latency", "serving_report", "mean_std",
           "noise_of_difference", "compare", "paired_bootstrap_se", "table", "fingerprint", "TeacherCache", "by_index",
           "recipe_key", "prepare_teacher", "value_checks", "values_checked", "check_number", "check_temperature",
           "check_finite", "check_labels", "whole"]
