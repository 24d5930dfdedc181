"""Process-wide settings are the caller's: library calls never change jax's configuration.

Only the command line (``jaxinit.cli.process_settings``) and the experiments' entry point
choose settings (devices per core, threefry mode), for the block they run.
"""

import pathlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxinit
import jaxinit.cli

REPO = pathlib.Path(jaxinit.__file__).parent.parent


def _config() -> dict:
    return dict(jax.config.values)


def _changed(before: dict) -> dict:
    after = _config()
    return {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
            if before.get(k) != after.get(k)}  # fmt: skip


def test_entry_points_leave_jax_config_unchanged(tmp_path):
    """init_params, reinit (with a module and with a rule set), run_study on a tiny study,
    the mean field and a registry draw, each checked on its own."""
    before = _config()
    key = jax.random.key(0)
    model = nn.Dense(4)
    x = jnp.ones((2, 3))

    def checked(what, fn):
        out = fn()
        assert not _changed(before), (what, _changed(before))
        return out

    params = checked("init_params", lambda: jaxinit.init_params(
        lambda k: model.init(k, x), key, rules={"*kernel": jaxinit.he_normal()}))  # fmt: skip
    checked("reinit", lambda: jaxinit.reinit(params, {"*kernel": "orthogonal"}, key))
    checked("reinit module", lambda: jaxinit.reinit(
        params, jaxinit.torch_default_rules(), key, module=model, sample=x))  # fmt: skip
    checked("get", lambda: jaxinit.get("he_normal", layout="torch")(key, (4, 3)))
    checked("mean_field", lambda: jaxinit.critical_weight_variance("tanh"))
    data = jaxinit.Dataset("toy", np.ones((8, 3), np.float32), np.zeros(8, np.int32),
                           np.ones((4, 3), np.float32), np.zeros(4, np.int32), 2)  # fmt: skip
    study = jaxinit.Study(model=jaxinit.MLP((4, 2)), dataset=data, optimizer=optax.sgd(0.1),
                          inits={"he": "he_normal"}, seeds=2, steps=2, batch_size=4,
                          log_every=1, eval_every=2)  # fmt: skip
    result = checked("run_study", lambda: jaxinit.run_study(study, progress=False))
    assert set(result.table.init) == {"he"}


def test_cli_settings_hold_for_the_block_only():
    """``process_settings`` sets non-partitionable threefry for its block and restores it
    (the device count is left alone once JAX has started: ``use_cpu_cores()`` is harmless)."""
    before = _config()
    with jaxinit.cli.process_settings():
        assert jax.config.jax_threefry_partitionable is False
    assert not _changed(before)


def test_only_the_cli_and_the_experiments_entry_set_process_settings():
    """No module of the library writes jax's configuration or the environment; the CLI
    does in ``use_cpu_cores`` (device count) and ``_compilation_cache`` (restored after
    the command), and the experiments only through ``jaxinit.cli.process_settings``."""
    setting = re.compile(
        r"jax\.config\.update|os\.environ\[.*\]\s*=|os\.environ\.(setdefault|update)|"
        r"os\.putenv|jax\.threefry_partitionable\(|jax_num_cpu_devices"
    )
    found = {}
    for path in sorted((REPO / "jaxinit").rglob("*.py")) + sorted(
        (REPO / "experiments").glob("*.py")
    ):
        code = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
        hits = [ln.strip() for ln in code if setting.search(ln) and '"""' not in ln]
        if path.parent.name == "experiments":  # a multi-process worker's own collectives,
            # set before jax.distributed.initialize (as tests/_processes.py does)
            hits = [ln for ln in hits if "jax_cpu_collectives_implementation" not in ln]
        if hits:
            found[str(path.relative_to(REPO))] = hits
    assert set(found) == {"jaxinit/cli/_settings.py"}, found
