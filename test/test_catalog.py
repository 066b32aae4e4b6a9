"""The catalog is the one description of the methods: every front end must agree with it."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from talk2dino_ros import catalog

ROOT = Path(__file__).resolve().parents[1]
ALL = [(m.name, v.name) for m in catalog.METHODS.values() for v in m.variants]


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    for action in parser._actions:
        if flag in action.option_strings:
            return action
    raise AssertionError(f'{parser.prog} has no {flag}')


def _model_parsers():
    """Every CLI that loads a model through cli.common."""
    from talk2dino_ros.cli import evaluate, segment_bag, segment_image, speed_benchmark
    return [segment_image.build_parser(), evaluate.build_parser(), speed_benchmark.build_parser(),
            segment_bag.build_parser()]


def test_catalog_imports_without_torch_or_ros():
    code = ('import sys, talk2dino_ros.catalog; '
            'bad = [m for m in ("torch", "rclpy", "timm") if m in sys.modules]; assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def test_names_derive_from_roles():
    role = catalog.ROLES['clip_dinoiser']
    assert (role.parameter, role.flag, role.dest) == ('clip_dinoiser_weights', '--clip-dinoiser-weights',
                                                      'clip_dinoiser_weights')
    assert catalog.get_method('talk2dino').roles == ('dinov2', 'dinov3', 'clip', 'proj')
    assert catalog.get_variant('talk2dino', 'dinov3_vitb').roles == ('dinov3', 'clip', 'proj')
    for m in catalog.METHODS.values():
        for v in m.variants:
            assert set(v.published) <= set(v.files), (m.name, v.name)
            for role, key in v.published.items():
                assert catalog.PUBLISHED[key].role == role


@pytest.mark.parametrize('parser_index', range(4))
def test_model_clis_offer_the_catalog(parser_index):
    parser = _model_parsers()[parser_index]
    assert tuple(_option(parser, '--method').choices) == catalog.method_names()
    assert tuple(_option(parser, '--variant').choices) == catalog.variant_names()
    for role in catalog.all_roles():
        assert _option(parser, role.flag).dest == role.dest


def test_cli_common_tables_match():
    from talk2dino_ros.cli import common
    assert common.METHODS == catalog.method_names() and common.VARIANTS == catalog.variant_names()
    assert common.WEIGHT_FLAGS == {m.name: {r: catalog.ROLES[r].flag for r in m.roles}
                                   for m in catalog.METHODS.values()}


def test_fetch_and_random_weight_clis_offer_the_catalog():
    from talk2dino_ros.cli import fetch_weights, make_random_weights
    from talk2dino_ros.model.random_weights import WIDTHS
    fw = fetch_weights.build_parser()
    assert tuple(_option(fw, '--method').choices) == catalog.method_names()
    # every variant is a choice; one without a full published set says how to get the rest (issue 24)
    assert tuple(_option(fw, '--variant').choices) == catalog.variant_names()
    published = [v.name for m in catalog.METHODS.values() for v in m.variants if v.fully_published]
    assert fetch_weights.fetchable_variants() == sorted(set(published), key=published.index)
    mrw = make_random_weights.build_parser()
    assert tuple(_option(mrw, '--method').choices) == catalog.method_names()
    assert tuple(_option(mrw, '--variant').choices) == catalog.variant_names()
    assert set(_option(mrw, '--width').choices) == {'tiny', *catalog.backbones()} == set(WIDTHS)


def test_speed_benchmark_random_widths():
    from talk2dino_ros.cli import speed_benchmark
    assert set(speed_benchmark.RANDOM_WIDTHS) == {'tiny', *catalog.backbones()}


def test_fetch_weights_registry_is_the_catalog():
    from talk2dino_ros.model import pretrained
    assert pretrained.PRETRAINED is catalog.PUBLISHED
    for (method, variant), roles in pretrained.BUNDLES.items():
        assert roles == dict(catalog.get_variant(method, variant).published)
        assert {r: f.filename for r, f in pretrained.bundle(method, variant).items()} == \
            {r: Path(p).name for r, p in catalog.default_weight_paths(method, variant, '/w').items()}
    with pytest.raises(KeyError, match='vits'):
        pretrained.bundle('talk2dino', 'vits')  # no published ψ


def test_node_parameters_follow_the_catalog():
    from talk2dino_ros.ros.parameters import SPECS, WEIGHT_PARAMS, descriptor
    assert SPECS['method'].choices == catalog.method_names()
    assert SPECS['variant'].choices == catalog.variant_names()
    for role in catalog.all_roles():
        spec = SPECS[role.parameter]
        assert (spec.default, spec.group, spec.description) == ('', 'model', role.description)
        assert descriptor(spec).name == role.parameter
    assert WEIGHT_PARAMS == {m.name: {r: catalog.ROLES[r].parameter for r in m.roles}
                             for m in catalog.METHODS.values()}


@pytest.mark.parametrize('method, variant', ALL)
def test_node_and_cli_resolve_the_same_default_paths(method, variant, tmp_path):
    """One resolver: the node's empty *_weights parameters and the CLI's absent flags give the same files."""
    from talk2dino_ros.cli import common
    from talk2dino_ros.ros.parameters import NodeSettings
    p = argparse.ArgumentParser()
    common.add_model_arguments(p)
    args = p.parse_args(['--method', method, '--variant', variant, '--weights-dir', str(tmp_path)])
    node = NodeSettings({'method': method, 'variant': variant, 'weights_dir': str(tmp_path)})
    defaults = catalog.default_weight_paths(method, variant, tmp_path)
    assert {role: path for role, _, path in node.weight_sources()} == defaults
    if not all(defaults.values()):  # nothing published for a role (vits' ψ): the CLI says how to make it
        with pytest.raises(common.CliError, match='train fit --variant'):
            common.resolve_weights(args)
        return
    assert common.resolve_weights(args) == defaults


def test_cli_refuses_a_role_the_variant_does_not_load(tmp_path):
    from talk2dino_ros.cli import common
    p = argparse.ArgumentParser()
    common.add_model_arguments(p)
    args = p.parse_args(['--variant', 'vitb', '--dinov3-weights', str(tmp_path / 'x.safetensors')])
    with pytest.raises(common.CliError, match='--dinov3-weights'):
        common.resolve_weights(args)


@pytest.mark.parametrize('method, variant', ALL)
def test_protocol_defaults_come_from_the_catalog(method, variant):
    from talk2dino_ros.data.benchmarks import protocol
    spec = catalog.get_method(method)
    p = protocol('voc21', method, variant)
    assert p.pamr is spec.protocol_pamr
    if spec.has_variants:
        assert p.background_threshold == spec.variant(variant).background_threshold
    assert p.bg_clean is spec.protocol_bg_clean  # voc21 cleans the background in Talk2DINO's protocol
    assert p.class_names == protocol('voc21', method, variant, pamr=False).class_names


def test_methods_registry_builds_every_catalog_method():
    from talk2dino_ros.model.methods import get_builder, weight_roles
    for method, variant in ALL:
        assert callable(get_builder(method))
        assert weight_roles(method, variant) == catalog.get_variant(method, variant).roles


@pytest.mark.parametrize('method, variant', [('talk2dino', 'vitb'), ('talk2dino', 'dinov3_vitb'),
                                             ('clip_dinoiser', 'vitb')])
def test_make_random_weights_writes_the_catalog_files(method, variant, tmp_path):
    from talk2dino_ros.cli import make_random_weights
    assert make_random_weights.main([str(tmp_path), '--method', method, '--variant', variant]) == 0
    files = catalog.get_variant(method, variant).files
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files.values())


def test_method_specific_wording_comes_from_the_catalog():
    assert catalog.background_is_threshold('talk2dino') and not catalog.background_is_threshold('clip_dinoiser')
    assert not catalog.background_is_threshold('no_such_method')
    assert catalog.describe('talk2dino', 'dinov3_vitl') == 'talk2dino/dinov3_vitl'
    assert catalog.describe('clip_dinoiser', 'vitl') == 'clip_dinoiser'
