import jax

import jaxinit
from jaxinit.cli import main

KEY = jax.random.key(0)


def test_keras_and_torch_names_resolve():
    assert jaxinit.scheme("HeUniform").name == "he_uniform"
    assert jaxinit.scheme("GlorotNormal").name == "glorot_normal"
    assert jaxinit.scheme("xavier_uniform").name == "glorot_uniform"
    assert jaxinit.scheme("kaiming_normal").name == "he_normal"
    assert jaxinit.scheme("kaiming_normal_").name == "torch_kaiming_normal"
    assert jaxinit.scheme("xavier_normal_").name == "torch_xavier_normal"
    assert jaxinit.scheme("RandomNormal").name == "random_normal"
    assert jaxinit.scheme("TruncatedNormal").name == "random_truncated_normal"
    assert jaxinit.scheme(" lecun_normal ").name == "lecun_normal"


def test_get_returns_working_initializers_and_passes_callables_through():
    init = jaxinit.get("he_uniform")
    assert init(KEY, (4, 3)).shape == (4, 3)
    assert jaxinit.get(init) is init
    assert jaxinit.get("constant", value=2.0)(KEY, (2,)).tolist() == [2.0, 2.0]


def test_metadata_follows_the_seed_table():
    for name in ("glorot_uniform", "glorot_normal"):
        assert set(jaxinit.scheme(name).activations) >= {"none", "tanh", "logistic", "softmax"}
        assert jaxinit.scheme(name).variance == "2 / (fan_in + fan_out)"
    for name in ("he_uniform", "he_normal"):
        assert "relu" in jaxinit.scheme(name).activations
        assert jaxinit.scheme(name).variance == "2 / fan_in"
    for name in ("lecun_uniform", "lecun_normal"):
        assert jaxinit.scheme(name).activations == ("selu",)
    for s in jaxinit.schemes():
        assert s.family and s.distribution and s.variance, s.name
        assert jaxinit.scheme(s.name) is s
        for alias in s.aliases:
            assert jaxinit.scheme(alias) is s


def test_cli_list_shows_every_scheme(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for s in jaxinit.schemes():
        assert s.name in out
    assert "2 / fan_in" in out


def test_cli_list_family_filter(capsys):
    main(["list", "--family", "torch"])
    out = capsys.readouterr().out
    assert "torch_kaiming_normal" in out and "glorot_uniform " not in out
