"""Just enough of CloudFormation to check what the SAM translator's output does on a deploy.

The SAM translator (aws-sam-translator, the library CloudFormation runs for the
AWS::Serverless-2016-10-31 transform) turns infra/template.yaml into plain CloudFormation. What
CloudFormation then does with that output depends on parameter values it resolves itself; this
module resolves the intrinsics the template uses (Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Join,
conditions, rules) for given parameter values, and builds the resource dependency graph, so the
tests can ask "does this parameter change publish a new version?" or "is the stage created after
the account setting?" without an AWS account.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "agent-router",
    "AWS::URLSuffix": "amazonaws.com",
}


class NoValue:
    """AWS::NoValue: the property is removed."""


NO_VALUE = NoValue()


def load_template() -> dict[str, Any]:
    return yaml.safe_load(TEMPLATE.read_text())


class _NoPolicies:
    """The managed-policy loader the translator asks for policy names; this template names none."""

    def load(self) -> dict[str, str]:
        return {}


def translate(overrides: dict[str, str] | None = None, template: dict | None = None) -> dict:
    """The CloudFormation the SAM transform produces for these parameter values (no AWS calls)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])
    from samtranslator.translator.transform import transform

    sam = copy.deepcopy(template if template is not None else load_template())
    params = dict(overrides or {})
    params.setdefault("AWS::Region", PSEUDO["AWS::Region"])
    params.setdefault("AWS::Partition", PSEUDO["AWS::Partition"])
    return transform(sam, params, _NoPolicies())


def parameter_values(template: dict, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """Every parameter's value as CloudFormation sees it (defaults, then overrides; lists split)."""
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        value = (overrides or {}).get(name, spec.get("Default"))
        if value is None:
            raise KeyError(f"parameter {name} has no value")
        value = str(value)
        if spec.get("Type") == "CommaDelimitedList":
            values[name] = [v.strip() for v in value.split(",")]
        else:
            values[name] = value
    values.update(PSEUDO)
    return values


class Resolver:
    """Resolves intrinsics for one set of parameter values."""

    def __init__(self, template: dict, overrides: dict[str, str] | None = None,
                 attributes: dict[str, Any] | None = None):
        self.template = template
        self.params = parameter_values(template, overrides)
        # "Logical.Attribute" -> value, for Fn::GetAtt and ${Logical.Attribute}
        self.attributes = dict(attributes or {})
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self._conditions[name]

    def resource_exists(self, logical_id: str) -> bool:
        resource = self.template["Resources"].get(logical_id)
        if resource is None:
            return False
        cond = resource.get("Condition")
        return cond is None or self.condition(cond)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            out = [self.value(v) for v in node]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::GetAtt":
                target = arg if isinstance(arg, str) else ".".join(arg)
                return self._attribute(target)
            if key == "Fn::If":
                name, yes, no = arg
                return self.value(yes if self.condition(name) else no)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(v) for v in self.value(items))
            if key == "Fn::Equals":
                a, b = (self.value(v) for v in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(v) for v in arg)
            if key == "Fn::Or":
                return any(self.value(v) for v in arg)
            if key == "Fn::Contains":
                items, item = arg
                return str(self.value(item)) in [str(v) for v in self.value(items)]
            if key == "Condition":
                return self.condition(arg)
        out = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        if name in self.attributes:
            return self.attributes[name]
        if name in self.template["Resources"]:
            return f"<{name}>"
        raise KeyError(f"Ref to unknown {name}")

    def _attribute(self, target: str) -> Any:
        if target in self.attributes:
            return self.attributes[target]
        logical = target.split(".")[0]
        if logical not in self.template["Resources"]:
            raise KeyError(f"GetAtt of unknown resource {target}")
        return f"<{target}>"

    def _sub(self, arg: Any) -> str:
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], self.value(arg[1]))

        def one(match: re.Match) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name and name not in self.params:
                return str(self._attribute(name))
            value = self._ref(name)
            if isinstance(value, list):
                raise ValueError(f"${{{name}}} is a list")
            return str(value)

        return re.sub(r"\$\{([^!}][^}]*)\}", one, text)


# ------------------------------------------------------------------------------------------------
# Dependencies
# ------------------------------------------------------------------------------------------------

def _references(node: Any, ids: set[str], out: set[str]) -> None:
    """Logical ids `node` refers to (Ref, Fn::GetAtt, ${...} in Fn::Sub)."""
    if isinstance(node, list):
        for v in node:
            _references(v, ids, out)
    elif isinstance(node, dict):
        for key, arg in node.items():
            if key == "Ref" and isinstance(arg, str) and arg in ids:
                out.add(arg)
            elif key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) else arg.split(".")[0]
                if target in ids:
                    out.add(target)
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    if name.split(".")[0] in ids:
                        out.add(name.split(".")[0])
                if isinstance(arg, list):
                    _references(arg[1], ids, out)
            else:
                _references(arg, ids, out)


def dependency_graph(cfn: dict, resolver: Resolver) -> dict[str, set[str]]:
    """Resource -> resources it waits for, in the stack these parameters produce: conditions
    resolved (resources whose condition is false are gone, Fn::If branches not taken are ignored),
    DependsOn plus the references in Properties, Metadata and UpdatePolicy."""
    live = {k for k in cfn["Resources"] if resolver.resource_exists(k)}
    graph: dict[str, set[str]] = {}
    for logical, resource in cfn["Resources"].items():
        if logical not in live:
            continue
        deps: set[str] = set()
        explicit = resource.get("DependsOn", [])
        deps.update([explicit] if isinstance(explicit, str) else explicit)
        for part in ("Properties", "Metadata", "UpdatePolicy"):
            if part in resource:
                _references(_taken_branches(resource[part], resolver), live, deps)
        missing = deps - live
        if missing:
            raise AssertionError(f"{logical} depends on resources that are not created: {missing}")
        graph[logical] = deps
    return graph


def _taken_branches(node: Any, resolver: Resolver) -> Any:
    """`node` with every Fn::If replaced by the branch CloudFormation takes."""
    if isinstance(node, list):
        return [_taken_branches(v, resolver) for v in node]
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            name, yes, no = node["Fn::If"]
            return _taken_branches(yes if resolver.condition(name) else no, resolver)
        return {k: _taken_branches(v, resolver) for k, v in node.items()}
    return node


def waits_for(graph: dict[str, set[str]], start: str, target: str) -> bool:
    """Whether `start` is created or updated only after `target` (a path in the graph)."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == target and node != start:
            return True
        if node in seen:
            continue
        seen.add(node)
        todo.extend(graph.get(node, ()))
    return False


def of_type(cfn: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == kind}


def only(cfn: dict, kind: str) -> tuple[str, dict]:
    found = of_type(cfn, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))
