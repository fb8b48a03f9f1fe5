from pathlib import Path

import pytest

from services.api.chats.personas import (
    DEFAULT_PERSONAS_PATH,
    Persona,
    PersonasError,
    load_personas,
    persona_object,
)
from shared.errors import InvalidRequestError

REPO = Path(__file__).resolve().parents[3]

GOOD = """
default = "maya"

[personas.maya]
description = "A warm assistant"
system = \"\"\"
You are Maya.
\"\"\"

[personas.coder]
description = "A programmer"
system = "You write code."
model = "openai/gpt-4o-mini"
temperature = 0.2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "personas.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_file_loads_with_maya_as_default():
    personas = load_personas(DEFAULT_PERSONAS_PATH)
    assert personas.default == "maya"
    assert {"maya", "coder"} <= set(personas.names())
    assert personas.names() == sorted(personas.names())
    maya = personas.get(None)
    assert maya.name == "maya" and maya.system.startswith("You are Maya")
    assert (maya.provider, maya.model) == ("", "")
    assert personas.get("") is maya
    assert personas.get("coder").name == "coder"


def test_the_deploy_link_resolves_to_the_shipped_file():
    link = REPO / "deploy" / "personas.toml"
    assert link.is_symlink()
    assert not Path(link.readlink()).is_absolute()
    assert link.resolve() == DEFAULT_PERSONAS_PATH


def test_an_unknown_persona_names_the_known_ones(tmp_path: Path):
    personas = load_personas(write(tmp_path, GOOD))
    with pytest.raises(InvalidRequestError) as caught:
        personas.get("nobody")
    assert caught.value.param == "persona"
    assert "'nobody'" in caught.value.message
    assert caught.value.message.endswith("coder, maya")


def test_a_good_file_strips_the_prompt_and_keeps_the_options(tmp_path: Path):
    personas = load_personas(write(tmp_path, GOOD))
    assert personas.get("maya").system == "You are Maya."
    assert personas.get("coder") == Persona(
        name="coder",
        description="A programmer",
        system="You write code.",
        model="openai/gpt-4o-mini",
        temperature=0.2,
    )


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("[personas.coder]", "[personas.Coder]", "persona name 'Coder'"),
        ("[personas.coder]", '[personas."-coder"]', "persona name '-coder'"),
        ("[personas.coder]", f"[personas.{'c' * 41}]", "persona name 'ccc"),
        ('default = "maya"', 'default = "mia"', "`default` 'mia' is not one of its personas (coder, maya)"),
        ('default = "maya"\n', "", "missing required field `default`"),
        ("temperature = 0.2", "temperature = 2.5", "<= 2.0 - at `$.personas.coder.temperature`"),
        ("temperature = 0.2", "temperature = -0.1", ">= 0.0 - at `$.personas.coder.temperature`"),
        ("temperature = 0.2", "temperature = nan", "at `$.personas.coder.temperature`"),
        ('system = "You write code."', 'system = "  "', "persona 'coder': `system` (the system prompt) must not"),
        ('system = "You write code."', "", "persona 'coder': Object missing required field `system`"),
        ('description = "A programmer"', 'description = ""', "persona 'coder': `description` must not be empty"),
        ('description = "A programmer"', 'description = "two\\nlines"', "`description` must be one line"),
        ("temperature = 0.2", 'colour = "blue"', "persona 'coder': Object contains unknown field `colour`"),
        ('default = "maya"', 'default = "maya"\nextra = 1', "unknown field `extra`"),
        ('model = "openai/gpt-4o-mini"', 'provider = "Open AI"', "`provider` 'Open AI' is not a provider name"),
        ('model = "openai/gpt-4o-mini"', 'model = " gpt-4o "', "`model` ' gpt-4o ' has surrounding whitespace"),
        ("[personas.coder]", "[personas.coder", "not valid TOML"),
    ],
)
def test_each_problem_is_a_personas_error_naming_the_file_and_field(tmp_path: Path, old: str, new: str, problem: str):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(PersonasError) as caught:
        load_personas(path)
    assert str(caught.value).startswith(f"personas file {path}: ")
    assert problem in str(caught.value)


def test_a_file_without_personas_is_refused(tmp_path: Path):
    with pytest.raises(PersonasError, match="at least one"):
        load_personas(write(tmp_path, 'default = "maya"\npersonas = {}\n'))


def test_a_missing_file_is_a_personas_error_naming_it(tmp_path: Path):
    path = tmp_path / "absent.toml"
    with pytest.raises(PersonasError, match=f"^personas file {path}: cannot be read"):
        load_personas(path)


def test_persona_object_leaves_out_unset_options_and_shows_the_prompt():
    maya = Persona(name="maya", description="Warm", system="You are Maya.")
    assert persona_object(maya, True) == {
        "name": "maya",
        "description": "Warm",
        "system": "You are Maya.",
        "default": True,
    }
    coder = Persona(name="coder", description="Code", system="Code.", provider="openai", model="gpt-4o", temperature=0)
    assert persona_object(coder, False) == {
        "name": "coder",
        "description": "Code",
        "system": "Code.",
        "provider": "openai",
        "model": "gpt-4o",
        "temperature": 0,
        "default": False,
    }
