"""The SQL recipes of the README ("The SQL views"), for the dashboard's SQL page: one-click
examples. ``tests/test_ui_api.py`` checks that they are, byte for byte and in order, the SQL
blocks of that section of the README.
A recipe whose first line is ``-- SQLite`` or ``-- PostgreSQL`` runs on that backend only.
"""
from __future__ import annotations

#: ``(title, sql)`` in the README's order.
RECIPES: tuple[tuple[str, str], ...] = (
    ('Best eval_loss_epoch of every run of an experiment', "SELECT run_name, MIN(min_value) AS best_eval_loss\nFROM v_summaries\nWHERE experiment = 'cli' AND metric = 'eval_loss_epoch'\nGROUP BY run_name ORDER BY best_eval_loss;\n"),
    ('The 10 best finished runs of an experiment', "SELECT r.run_name, MIN(s.min_value) AS best_eval_loss, r.created_at\nFROM v_summaries s JOIN v_runs r ON r.run_id = s.run_id\nWHERE r.experiment = 'cli' AND r.status = 'finished' AND s.metric = 'eval_loss_epoch'\nGROUP BY r.run_id, r.run_name, r.created_at\nORDER BY best_eval_loss LIMIT 10;\n"),
    ('Runs in which a layer group was unfrozen before epoch 5', "-- SQLite\nSELECT r.experiment, r.run_name, e.epoch, e.recorded_at\nFROM v_events e JOIN v_runs r ON r.run_id = e.run_id\nWHERE e.kind = 'unfreeze' AND e.epoch < 5\n  AND json_array_length(e.payload, '$.groups_unfrozen') > 0;\n"),
    ('Runs in which a layer group was unfrozen before epoch 5', "-- PostgreSQL\nSELECT r.experiment, r.run_name, e.epoch, e.recorded_at\nFROM v_events e JOIN v_runs r ON r.run_id = e.run_id\nWHERE e.kind = 'unfreeze' AND e.epoch < 5\n  AND jsonb_array_length(e.payload::jsonb -> 'groups_unfrozen') > 0;\n"),
    ('The config fields that differ between two runs', "-- PostgreSQL\nWITH latest AS (\n  SELECT DISTINCT ON (r.run_name) r.run_name,\n         to_jsonb(c) - 'run_id' - 'stage' - 'captured_at' AS config\n  FROM v_configs c JOIN v_runs r ON r.run_id = c.run_id\n  WHERE r.experiment = 'cli' AND r.run_name IN ('baseline', 'fast') AND c.kind = 'train'\n  ORDER BY r.run_name, c.captured_at DESC\n)\nSELECT a.key AS field, a.value AS baseline, b.value AS fast\nFROM latest x, jsonb_each(x.config) a, latest y, jsonb_each(y.config) b\nWHERE x.run_name = 'baseline' AND y.run_name = 'fast' AND a.key = b.key\n  AND a.value IS DISTINCT FROM b.value\nORDER BY field;\n"),
    ('The config fields that differ between two runs', "-- SQLite\nWITH latest AS (\n  SELECT r.run_name, c.* FROM v_configs c JOIN v_runs r ON r.run_id = c.run_id\n  WHERE r.experiment = 'cli' AND c.kind = 'train' AND c.captured_at =\n        (SELECT MAX(captured_at) FROM v_configs WHERE run_id = c.run_id AND kind = 'train')\n), a AS (SELECT * FROM latest WHERE run_name = 'baseline'),\n   b AS (SELECT * FROM latest WHERE run_name = 'fast')\nSELECT field, a_value AS baseline, b_value AS fast FROM (\n  SELECT 'num_epochs' AS field, a.num_epochs AS a_value, b.num_epochs AS b_value FROM a, b\n  UNION ALL SELECT 'train_per_device_batch_size', a.train_per_device_batch_size, b.train_per_device_batch_size FROM a, b\n  UNION ALL SELECT 'train_dl_kwargs', a.train_dl_kwargs, b.train_dl_kwargs FROM a, b\n  UNION ALL SELECT 'gradient_accumulation_steps', a.gradient_accumulation_steps, b.gradient_accumulation_steps FROM a, b\n  UNION ALL SELECT 'max_num_train_steps', a.max_num_train_steps, b.max_num_train_steps FROM a, b\n) AS fields WHERE a_value IS NOT b_value;\n"),
    ('The curve of one run, one row per epoch', "SELECT stage, epoch, value FROM v_metrics\nWHERE experiment = 'cli' AND run_name = 'finetune' AND metric = 'train_loss_epoch'\nORDER BY stage, seq;\n"),
    ('Runs that are still running, and since when', "SELECT run_name, created_at, current_epoch FROM v_runs WHERE status = 'running';\n"),
    ('The best run per learning rate, by its best eval_loss', "WITH lr AS (\n  SELECT run_id, value AS lr FROM v_params WHERE key = 'lr' AND is_current\n), best AS (\n  SELECT run_id, MIN(min_value) AS best_loss FROM v_summaries WHERE metric = 'eval_loss' GROUP BY run_id\n)\nSELECT lr.lr, r.run_name, b.best_loss\nFROM lr JOIN best b ON b.run_id = lr.run_id JOIN v_runs r ON r.run_id = lr.run_id\nWHERE b.best_loss = (SELECT MIN(b2.best_loss) FROM best b2 JOIN lr l2 ON l2.run_id = b2.run_id WHERE l2.lr = lr.lr)\nORDER BY lr.lr;\n"),
    ('The runs whose model is bert-base now', "SELECT r.run_name, r.status, r.created_at\nFROM v_params p JOIN v_runs r ON r.run_id = p.run_id\nWHERE p.key = 'model' AND p.value_text = 'bert-base' AND p.is_current\nORDER BY r.run_id;\n"),
)


def recipes_for(dialect: str) -> list[tuple[str, str]]:
    """The recipes that run on ``dialect`` (``"sqlite"`` or ``"postgresql"``)."""
    other = {"sqlite": "-- PostgreSQL", "postgresql": "-- SQLite"}.get(dialect)
    return [(title, sql) for title, sql in RECIPES if other is None or not sql.startswith(other)]
