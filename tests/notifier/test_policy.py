"""The notification policy and templates load, validate and refuse bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.policy import DEFAULT_POLICY, TEMPLATES_DIR, PolicyError, load_policy


def test_default_policy_loads_with_swedish_and_english() -> None:
    policy = load_policy()
    assert policy.version
    assert {"sv", "en"} <= set(policy.templates)
    assert policy.rule("any-org", "late_rent_detected").actions == ("sms_tenant",)
    assert policy.rule("any-org", "personal_contact_needed").actions == (
        "call_task",
        "staff_alert_sms",
    )


def test_org_override_wins() -> None:
    policy = load_policy()
    assert policy.contact("demo-org").name.startswith("Bostadsbolaget")
    assert policy.contact("other").name == policy.landlord_contact.name


def test_templates_never_ask_for_personnummer_and_name_help() -> None:
    policy = load_policy()
    for language, templates in policy.templates.items():
        for name in ("late_rent", "recovery_reminder", "welcome"):
            text = templates[name]
            assert "personnummer" not in text.lower()
            assert "{landlord_phone}" in text, (language, name)
        assert "{amount}" in templates["late_rent"] and "{due_date}" in templates["late_rent"]
    assert "avbetalningsplan" in policy.templates["sv"]["late_rent"]
    assert "payment plan" in policy.templates["en"]["late_rent"]


def _copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    target.mkdir()
    for path in TEMPLATES_DIR.glob("*.yaml"):
        (target / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return target


def test_unknown_template_variable_is_a_load_error_naming_it(tmp_path: Path) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "de.yaml").write_text("late_rent: 'Bitte {personnummer} zahlen'\n")
    with pytest.raises(PolicyError, match="personnummer"):
        load_policy(templates_dir=templates)


def test_a_language_is_added_by_adding_a_file(tmp_path: Path) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "fi.yaml").write_text("late_rent: 'Vuokra {period}: {amount} SEK'\n")
    policy = load_policy(templates_dir=templates)
    assert policy.template("fi", "late_rent")[0] == "fi"
    assert policy.template("fi", "welcome")[0] == "sv"  # falls back to the default language


def test_missing_template_is_a_load_error(tmp_path: Path) -> None:
    text = DEFAULT_POLICY.read_text().replace("template: late_rent", "template: nosuch")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match="nosuch"):
        load_policy(path)


def test_invalid_action_names_the_field(tmp_path: Path) -> None:
    text = DEFAULT_POLICY.read_text().replace("actions: [call_task]}", "actions: [fax]}")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match="high_risk"):
        load_policy(path)


def test_org_can_override_signal_actions_and_welcome(tmp_path: Path) -> None:
    text = DEFAULT_POLICY.read_text() + (
        "  quiet-org:\n"
        "    welcome_sms: {enabled: false}\n"
        "    weekly_cap_per_tenant: 1\n"
        "    signals:\n"
        "      late_rent_detected: {actions: [call_task, staff_alert_sms]}\n"
    )
    path = tmp_path / "p.yaml"
    path.write_text(text)
    policy = load_policy(path)
    assert policy.rule("quiet-org", "late_rent_detected").actions == (
        "call_task",
        "staff_alert_sms",
    )
    assert policy.rule("other", "late_rent_detected").actions == ("sms_tenant",)
    assert not policy.welcome("quiet-org").enabled and policy.welcome("other").enabled
    assert policy.weekly_cap("quiet-org") == 1 and policy.weekly_cap("other") == 3
