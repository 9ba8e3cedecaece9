"""The Python API behind the CLI: every command is one call here, with explicit arguments.

The pieces (space, device config, table, records, profiler, predictor, search) are passed
around as values; nothing is global. One module per concern: ``device`` (Context, Session,
tables and records), ``measuring``, ``predicting`` and ``workflows`` (the main job). A
typical session::

    from hwnas import api
    res = api.search("local-cpu", target_ms=8.0, seed=0)
    print(res.result.best.arch, res.result.best.latency_ms, res.measured.median_ms)
"""

from hwnas.api.device import (Context, context, load_table, Session, session, _open_profiler, _profiler, reference_scale_ms, load_records, model_context, _imported, _can_save, _plot_or_warn)  # noqa: F401
from hwnas.api.measuring import (_check_budget, profile, _measure_pass, measure, _cheap_estimate, measure_arch, measure_archs, _pooled, profile_model, export)  # noqa: F401
from hwnas.api.predicting import (import_table, _describe_table, _existing_table, calibration_set, lut_predictor, _lut_chosen, _space_ops_missing, arch_context, predictor, _budget_error, predict, _dataset, fit, Evaluation, evaluate)  # noqa: F401
from hwnas.api.workflows import (SearchOutcome, ensure_ready, ready_predictor, _rescale_widths, search, _search, _pareto_png)  # noqa: F401
from hwnas.api.workflows import CALIBRATION_SUBNETS  # noqa: F401
from hwnas.api.adapting import (Adaptation, RecordsImport, adapt, fit_fewshot, import_records,  # noqa: F401
                                import_records_csv, predict_batch, proxy_records, read_arch_list)
