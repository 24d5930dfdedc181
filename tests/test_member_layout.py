"""How members are laid out in a program (``Study(member_layout=...)``) and how many go in
one (``Study(memory_budget=...)``): the same numbers whatever the choice, the choice and its
reason in ``result.info``, bad values refused with the allowed ones named."""

import numpy as np
import optax
import pytest

import jaxinit


def _study(model=None, **kw):
    args = dict(
        model=model or jaxinit.MLP((16, 10)),
        dataset=jaxinit.digits(),
        optimizer=optax.sgd(0.05, momentum=0.9),
        inits={"he": "he_normal", "lecun": "lecun_normal"},
        seeds=2,
        steps=6,
        batch_size=16,
        log_every=3,
    )
    args.update(kw)
    return jaxinit.Study(**args)


def _resnet():
    return jaxinit.ResNet(channels=(4,))  # a stem and one BatchNorm residual block


@pytest.fixture(scope="module")
def resnet_vmap():
    # the scanned program, members vmapped: the engine's program before host stepping
    return jaxinit.run_study(
        _study(_resnet(), member_layout="vmap", stepping="scan"), progress=False
    )


@pytest.fixture(scope="module")
def resnet_auto():
    return jaxinit.run_study(_study(_resnet()), progress=False)


def test_cnn_on_the_cpu_loops_over_members_with_the_numbers_of_vmap(resnet_vmap, resnet_auto):
    auto = resnet_auto
    assert auto.info["member_layout"] == "loop"
    assert "convolution" in auto.info["member_layout_reason"]
    # and is stepped from the host (no convolution inside a loop: jax#12868)
    assert auto.info["stepping"] == "host"
    assert "jax#12868" in auto.info["stepping_reason"]
    assert resnet_vmap.info["member_layout"] == "vmap"
    assert resnet_vmap.info["member_layout_reason"] == "member_layout='vmap' given"
    assert resnet_vmap.info["stepping"] == "scan"
    assert resnet_vmap.info["stepping_reason"] == "stepping='scan' given"
    a, b = auto.table, resnet_vmap.table
    assert a[["init", "seed", "step", "metric"]].equals(b[["init", "seed", "step", "metric"]])
    # not bit-identical: an unbatched convolution sums in another order than a grouped one
    np.testing.assert_allclose(a.value, b.value, rtol=1e-5, atol=1e-6)


def test_mlp_auto_is_vmap_and_bit_identical_to_it():
    auto = jaxinit.run_study(_study(), progress=False)
    vmap = jaxinit.run_study(_study(member_layout="vmap"), progress=False)
    assert auto.info["member_layout"] == "vmap"
    assert auto.info["member_layout_reason"].startswith("auto: no convolution")
    assert auto.info["stepping"] == "scan"
    assert auto.info["stepping_reason"].startswith("auto: no convolution")
    np.testing.assert_array_equal(auto.table.value, vmap.table.value)


@pytest.mark.parametrize("layout", [pytest.param("vmap", marks=pytest.mark.slow), "loop"])
def test_mlp_host_stepped_is_bit_identical_to_the_scan(layout):
    # two chunks (evaluated in between), two log intervals each; the same per-step math
    # (_program._train_step), minibatch rows, keys and interval means as the scan
    kw = dict(eval_every=3, log_every=3, steps=6, member_layout=layout)
    scan = jaxinit.run_study(_study(stepping="scan", **kw), progress=False)
    host = jaxinit.run_study(_study(stepping="host", **kw), progress=False)
    assert host.info["stepping"] == "host"
    assert host.info["stepping_reason"] == "stepping='host' given"
    assert host.table[["init", "seed", "step", "metric"]].equals(
        scan.table[["init", "seed", "step", "metric"]]
    )
    np.testing.assert_array_equal(host.table.value, scan.table.value)


def test_host_stepped_host_data_matches_the_scan():
    d = jaxinit.digits()
    data = jaxinit.HostData("digits", train=(d.x_train, d.y_train), test=(d.x_test, d.y_test),
                            num_classes=10)  # fmt: skip
    scan = jaxinit.run_study(_study(dataset=data, eval_every=3), progress=False)
    host = jaxinit.run_study(_study(dataset=data, eval_every=3, stepping="host"), progress=False)
    assert host.info["stepping"] == "host"
    np.testing.assert_array_equal(host.table.value, scan.table.value)


class _Stop(Exception):
    pass


def test_host_stepped_resnet_resumes_to_the_uninterrupted_table(tmp_path, resnet_auto):
    # stopped after its first chunk's checkpoint (the callback runs after it), then resumed
    from jaxinit.study import _checkpoint

    def stop(rows, start, stop):
        raise _Stop

    study = _study(_resnet(), eval_every=3)
    with pytest.raises(_Stop):
        jaxinit.run_study(study, out_dir=tmp_path, progress=False, callbacks=[stop])
    _checkpoint._wait_all()
    assert not (tmp_path / "results.csv").exists()
    resumed = jaxinit.run_study(study, out_dir=tmp_path, progress=False)
    assert resumed.info["stepping"] == "host"
    whole = jaxinit.run_study(study, progress=False)
    assert resumed.table.equals(whole.table)
    # chunks change nothing either: the rows of one chunk of every step (the chunks add
    # an evaluation at step 3)
    keys = ["init", "seed", "step", "metric"]
    both = whole.table.merge(resnet_auto.table, on=keys)
    assert len(both) == len(resnet_auto.table)
    np.testing.assert_allclose(both.value_x, both.value_y, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # ~12 s; member groups of the scanned engine are tested by default
def test_host_stepped_member_groups_give_the_table_of_one_group():
    one = jaxinit.run_study(_study(seeds=4, stepping="host"), progress=False)
    assert one.info["member_group"] == 8
    whole = one.info["bytes_whole_population"]
    small = jaxinit.run_study(_study(seeds=4, stepping="host", memory_budget=whole - 1),
                              progress=False)  # fmt: skip
    assert small.info["member_group"] < 8
    assert small.info["bytes_per_group"] <= whole - 1
    # as in the scanned engine: another vmap width sums in another order (~2e-7)
    np.testing.assert_allclose(small.table.value, one.table.value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["loop", 3])
def test_loop_and_batched_loop_layouts_match_vmap(layout):
    vmap = jaxinit.run_study(_study(seeds=3), progress=False)
    other = jaxinit.run_study(_study(seeds=3, member_layout=layout), progress=False)
    assert other.info["member_layout"] == layout
    np.testing.assert_allclose(other.table.value, vmap.table.value, rtol=1e-5, atol=1e-6)


def test_a_small_memory_budget_runs_in_groups_with_the_table_of_one_group(capsys):
    one = jaxinit.run_study(_study(seeds=4), progress=False)  # 8 members, 2 per device
    assert one.info["member_group"] == 8
    whole = one.info["bytes_whole_population"]
    assert whole <= one.info["memory_budget"]
    small = jaxinit.run_study(_study(seeds=4, memory_budget=whole - 1), progress=True)
    assert small.info["member_group"] == 4  # one member per device
    assert small.info["memory_budget"] == whole - 1
    assert small.info["bytes_per_group"] <= whole - 1
    assert small.info["bytes_per_member"] > 0
    assert "groups of 1 per device" in small.info["group_reason"]
    assert "run_study: members 'vmap'" in capsys.readouterr().err  # the progress output
    np.testing.assert_allclose(small.table.value, one.table.value, rtol=1e-5, atol=1e-6)


def test_a_budget_too_small_for_one_member_is_refused():
    with pytest.raises(ValueError, match=r"memory budget of 1000 bytes per device .* too small"
                       r" for one member per device: its training program needs \d+ bytes;"
                       r" give Study\(memory_budget=\.\.\.\)"):  # fmt: skip
        jaxinit.run_study(_study(memory_budget=1000), progress=False)


def test_max_members_wins_over_the_memory_budget():
    r = jaxinit.run_study(_study(max_members=4, memory_budget=1), progress=False)
    assert r.info["member_group"] == 4
    assert r.info["group_reason"] == "max_members=4 given"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"member_layout": "grouped"}, "member_layout must be 'auto', 'vmap', 'loop' or a"),
        ({"member_layout": 0}, r"positive int .* got 0"),
        ({"member_layout": True}, "got True"),
        ({"member_layout": 2.0}, "got 2.0"),
        ({"memory_budget": 0}, "memory_budget must be None .* or a positive int of bytes"),
        ({"memory_budget": 1.5e9}, "got 1500000000.0"),
        ({"stepping": "unrolled"}, "stepping must be 'auto', 'scan' .* or 'host'"),
    ],
)
def test_bad_layout_and_budget_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        jaxinit.run_study(_study(**kw), progress=False)
