"""What the SAM stack does on its second deploy, checked on the SAM translator's real output.

Each test translates infra/template.yaml with aws-sam-translator (the library behind
CloudFormation's AWS::Serverless transform; pinned in scripts/test) and resolves the result for
given parameter values with tests/deploy/cfn.py. Issue 17 lists the defects these tests pin.

Run: python3 -m pytest tests/deploy (scripts/test does, after installing the pinned packages).
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from unittest import mock

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cfn  # noqa: E402
from cfn import NO_VALUE, Resolver, dependency_graph, load_template, of_type, only, translate, waits_for  # noqa: E402

TEMPLATE = load_template()


@pytest.fixture(scope="module")
def default_stack() -> dict:
    return translate()


# ------------------------------------------------------------------------------------------------
# 1. Every configuration change publishes a new version
# ------------------------------------------------------------------------------------------------

def run_digest_function(configuration: dict) -> str:
    """Runs the template's inline ConfigDigestFunction on a Create event, as CloudFormation would,
    with a stand-in for Lambda's cfnresponse module; returns the Digest it reports."""
    code = TEMPLATE["Resources"]["ConfigDigestFunction"]["Properties"]["InlineCode"]
    sent = []
    fake = types.ModuleType("cfnresponse")
    fake.SUCCESS, fake.FAILED = "SUCCESS", "FAILED"
    fake.send = lambda event, context, status, data, physical_id=None, **kw: sent.append(
        (status, data, physical_id, kw))
    with mock.patch.dict(sys.modules, {"cfnresponse": fake}):
        namespace: dict = {}
        exec(compile(code, "ConfigDigestFunction", "exec"), namespace)  # noqa: S102
        namespace["handler"]({"RequestType": "Create",
                              "ResourceProperties": {"ServiceToken": "arn", "Configuration": configuration}},
                             None)
    assert len(sent) == 1, sent
    status, data, physical_id, _ = sent[0]
    assert status == "SUCCESS", sent
    assert physical_id == "config-digest", "a stable physical id: an update is not a replacement"
    assert re.fullmatch(r"[0-9a-f]{64}", data["Digest"]), data
    return data["Digest"]


def published_version(overrides: dict[str, str], image: str | None = None) -> tuple[str, str]:
    """(logical id, resolved Description) of the Lambda version these parameters publish.

    CloudFormation resolves the Description from the digest custom resource, whose Configuration
    it resolves from the parameters; the function behind it is run here for real."""
    template = TEMPLATE
    if image is not None:
        template = json.loads(json.dumps(TEMPLATE))
        template["Resources"]["RouterFunction"]["Properties"]["ImageUri"] = image
    out = translate(overrides, template)
    logical, version = only(out, "AWS::Lambda::Version")
    resolver = Resolver(out, overrides)
    digest_props = resolver.value(out["Resources"]["RouterConfigDigest"]["Properties"])
    resolver.attributes["RouterConfigDigest.Digest"] = run_digest_function(digest_props["Configuration"])
    description = resolver.value(version["Properties"].get("Description", ""))
    alias = only(out, "AWS::Lambda::Alias")[1]
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [logical, "Version"]}
    return logical, description


def parameters_reaching_the_function(cfn_template: dict) -> set[str]:
    """Template parameters the translated function's configuration refers to (environment,
    memory, architecture, logging...), directly or through a condition's Fn::If, i.e. everything
    a published version freezes."""
    function = cfn_template["Resources"]["RouterFunction"]
    found: set[str] = set()
    params = set(TEMPLATE["Parameters"])

    def walk(node):
        if isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, dict):
            for k, v in node.items():
                if k == "Ref" and v in params:
                    found.add(v)
                elif k == "Fn::Sub":
                    text = v if isinstance(v, str) else v[0]
                    found.update(n for n in re.findall(r"\$\{([^}.!]+)\}", text) if n in params)
                    walk(v)
                elif k in ("Fn::If", "Condition"):
                    # A value chosen by a condition depends on the parameters the condition reads.
                    name = v[0] if k == "Fn::If" else v
                    walk(TEMPLATE["Conditions"][name])
                    walk(v[1:] if k == "Fn::If" else [])
                else:
                    walk(v)

    props = {k: v for k, v in function["Properties"].items() if k not in ("Role", "Code")}
    walk(props)
    return found


def another_value(name: str) -> str:
    """A valid value of parameter `name` other than its default."""
    spec = TEMPLATE["Parameters"][name]
    default = str(spec.get("Default", ""))
    if "AllowedValues" in spec:
        return next(str(v) for v in spec["AllowedValues"] if str(v) != default)
    if spec["Type"] == "Number":
        value = int(float(default)) + 1
        return str(value if value <= spec.get("MaxValue", value) else int(float(default)) - 1)
    if name == "RoutesFile":
        return "/var/task/routes.toml"
    return (default + "-2") if default else "x"


def test_the_version_freezes_parameters_sam_does_not_hash(default_stack):
    # The defect itself, in SAM's output: a parameter change leaves the version's logical id
    # alone (SAM hashes `Ref: ModelId`, not its value), so nothing but the Description can make
    # CloudFormation publish a new version.
    reaching = parameters_reaching_the_function(default_stack)
    assert {"ModelId", "MemorySize", "MetricsNamespace", "CostAgentFunction", "LogLevel"} <= reaching
    changed = translate({"ModelId": "eu.anthropic.claude-haiku-4-5-20251001-v1:0"})
    assert only(changed, "AWS::Lambda::Version")[0] == only(default_stack, "AWS::Lambda::Version")[0]
    # AutoPublishCodeSha256 cannot carry them: SAM refuses anything but a string or a Ref.
    t = json.loads(json.dumps(TEMPLATE))
    t["Resources"]["RouterFunction"]["Properties"]["AutoPublishCodeSha256"] = {"Fn::Sub": "${ModelId}"}
    with pytest.raises(Exception, match="AutoPublishCodeSha256 must be a string"):
        translate({}, t)
    # A version's Description is create-only: a new value replaces the version, i.e. CloudFormation
    # publishes a new one (cfn-lint's copy of the CloudFormation resource schema says so).
    from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::Lambda::Version").schema
    assert "/properties/Description" in schema["createOnlyProperties"]


def test_digest_covers_every_parameter_that_reaches_the_function(default_stack):
    configuration = TEMPLATE["Resources"]["RouterConfigDigest"]["Properties"]["Configuration"]
    digested = {v["Ref"] for v in configuration.values()}
    assert parameters_reaching_the_function(default_stack) <= digested
    # Only those: a change elsewhere (API throttling, alarms) must not publish a version.
    assert digested <= parameters_reaching_the_function(default_stack)


def test_changing_only_model_id_publishes_a_new_version():
    base = published_version({})
    changed = published_version({"ModelId": "eu.anthropic.claude-haiku-4-5-20251001-v1:0"})
    assert base[1].startswith("agent-router configuration "), base
    assert changed[1] != base[1], "ModelId alone must change the published version"
    assert published_version({}) == base, "the same parameters publish nothing new"


@pytest.mark.parametrize("name", sorted(cfn.parameter_values(TEMPLATE).keys() & set(TEMPLATE["Parameters"])))
def test_each_parameter_publishes_a_version_exactly_when_it_reaches_the_function(name, default_stack):
    if name == "BedrockFoundationModelArns":
        value = "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
    else:
        value = another_value(name)
    if name == "AutoScalingMaxCapacity":
        value = "5"  # the Rules want 0 or at least ProvisionedConcurrency
    base = published_version({})[1]
    changed = published_version({name: value})[1]
    if name in parameters_reaching_the_function(default_stack):
        assert changed != base, f"changing {name} must publish a new version"
    else:
        assert changed == base, f"{name} does not reach the function: no new version"


def test_a_new_image_still_publishes_a_new_version():
    a = published_version({}, image="123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-router:routerfunction-aaaa")
    b = published_version({}, image="123456789012.dkr.ecr.us-east-1.amazonaws.com/agent-router:routerfunction-bbbb")
    assert a[0] != b[0]


def test_replaced_versions_are_kept_for_rollback(default_stack):
    _, version = only(default_stack, "AWS::Lambda::Version")
    assert version.get("DeletionPolicy") == "Retain"
    assert version.get("UpdateReplacePolicy") == "Retain"
    function = default_stack["Resources"]["RouterFunction"]
    assert function.get("DeletionPolicy", "Delete") == "Delete", "the function goes with the stack"


# ------------------------------------------------------------------------------------------------
# 2. Switching ApiAuth reaches the stage
# ------------------------------------------------------------------------------------------------

def deployment_at(overrides: dict[str, str], now: int) -> tuple[str, dict]:
    with mock.patch("samtranslator.model.apigateway.time.time", return_value=float(now)):
        out = translate(overrides)
    logical, _ = only(out, "AWS::ApiGateway::Deployment")
    _, stage = only(out, "AWS::ApiGateway::Stage")
    assert stage["Properties"]["DeploymentId"] == {"Ref": logical}
    return logical, out


def test_switching_api_auth_deploys_a_new_snapshot_to_the_stage():
    first, _ = deployment_at({"ApiAuth": "API_KEY"}, 1_767_000_000)
    second, out = deployment_at({"ApiAuth": "AWS_IAM"}, 1_767_000_600)
    assert first != second, "the second deploy must create a new API deployment"
    # ...and the definition it snapshots is the AWS_IAM one.
    body = Resolver(out, {"ApiAuth": "AWS_IAM"}).value(out["Resources"]["RouterApi"]["Properties"]["Body"])
    for path in body["paths"].values():
        for op in path.values():
            assert op["security"] == [{"sigv4": []}], op


# ------------------------------------------------------------------------------------------------
# 3. Metrics survive any log level
# ------------------------------------------------------------------------------------------------

LAMBDA_LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


@pytest.mark.parametrize("level", TEMPLATE["Parameters"]["LogLevel"]["AllowedValues"])
def test_emf_lines_pass_lambdas_filter_at_every_log_level(level):
    out = translate({"LogLevel": level})
    function = out["Resources"]["RouterFunction"]
    resolver = Resolver(out, {"LogLevel": level})
    logging = resolver.value(function["Properties"]["LoggingConfig"])
    assert logging["LogFormat"] == "JSON"
    # Lambda sends an application line when its level is at or above ApplicationLogLevel; an EMF
    # line has no "level" (tests/deploy.rs checks the router's), which Lambda reads as INFO.
    threshold = LAMBDA_LEVELS.index(logging.get("ApplicationLogLevel", "INFO"))
    assert LAMBDA_LEVELS.index("INFO") >= threshold, f"LogLevel={level} drops every metric line"
    # The router still logs at the operator's level, through its own variable.
    env = resolver.value(function["Properties"]["Environment"]["Variables"])
    assert env["ROUTER_LOG_LEVEL"] == level
    # The init-duration metric filter reads platform.report records, which are INFO system logs.
    assert LAMBDA_LEVELS.index("INFO") >= LAMBDA_LEVELS.index(logging["SystemLogLevel"])


# ------------------------------------------------------------------------------------------------
# 4. API Gateway's cache and fail-open answers
# ------------------------------------------------------------------------------------------------

def stage_caching(overrides: dict[str, str]) -> tuple[bool, list[tuple[str, str]]]:
    out = translate(overrides)
    _, stage = only(out, "AWS::ApiGateway::Stage")
    props = Resolver(out, overrides).value(stage["Properties"])
    cached = [(m["ResourcePath"], m["HttpMethod"]) for m in props["MethodSettings"] if m.get("CachingEnabled")]
    return bool(props.get("CacheClusterEnabled")), cached


def test_api_gateway_cache_is_off_unless_asked_for():
    # API Gateway stores whatever GET /route answered, a fail-open default after a Bedrock timeout
    # included (tests/deploy.rs shows the handler answers it 200), so the stack ships without it.
    assert stage_caching({}) == (False, [])
    assert stage_caching({"ApiCacheTtlSeconds": "60"}) == (True, [("/~1route", "GET")])


def dashboard(overrides: dict[str, str] | None = None) -> dict:
    out = translate(overrides)
    _, dash = only(out, "AWS::CloudWatch::Dashboard")
    resolver = Resolver(out, overrides, attributes={"RouterFunction": "agent-router-fn"})
    return json.loads(resolver.value(dash["Properties"]["DashboardBody"]))


def test_dashboard_shows_the_share_api_gateway_answered_from_its_cache():
    widgets = dashboard()["widgets"]
    found = False
    for w in widgets:
        rows = w["properties"]["metrics"]
        ids = {r[-1].get("id"): r for r in rows if isinstance(r[-1], dict) and r[0] == "AWS/ApiGateway"}
        hits = [i for i, r in ids.items() if r[1] == "CacheHitCount"]
        misses = [i for i, r in ids.items() if r[1] == "CacheMissCount"]
        for r in rows:
            expr = r[0].get("expression", "") if isinstance(r[0], dict) else ""
            if hits and misses and hits[0] in expr and misses[0] in expr and "/" in expr:
                found = True
    assert found, "a widget computes CacheHitCount / (CacheHitCount + CacheMissCount)"


# ------------------------------------------------------------------------------------------------
# 5. The canary catches 5xx answers and failing Bedrock calls
# ------------------------------------------------------------------------------------------------

def alarm_metrics(alarm: dict) -> list[dict]:
    return [m["MetricStat"]["Metric"] for m in alarm["Properties"].get("Metrics", []) if "MetricStat" in m]


def test_canary_rolls_back_on_5xx_and_llm_error_fallbacks_of_the_new_version(default_stack):
    version_id, _ = only(default_stack, "AWS::Lambda::Version")
    _, group = only(default_stack, "AWS::CodeDeploy::DeploymentGroup")
    wired = {a["Name"]["Ref"] for a in group["Properties"]["AlarmConfiguration"]["Alarms"]}
    alarms = of_type(default_stack, "AWS::CloudWatch::Alarm")
    by_metric: dict[str, str] = {}
    for name in wired:
        for metric in alarm_metrics(alarms[name]):
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            key = metric["MetricName"] + "".join(f"/{v}" for k, v in sorted(dims.items()) if k == "FallbackReason")
            by_metric[key] = name
            if metric["Namespace"] == {"Ref": "MetricsNamespace"}:
                # The router's metrics per version: only the version being deployed counts.
                assert dims["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}, (name, dims)
    assert {"ServerErrors", "Requests"} <= by_metric.keys(), by_metric
    assert by_metric["ServerErrors"] == by_metric["Requests"]
    llm = {"LlmCalls", "Fallbacks/llm_error", "Fallbacks/llm_unavailable", "Fallbacks/llm_unrecognised_answer"}
    assert llm <= by_metric.keys(), by_metric
    assert len({by_metric[k] for k in llm}) == 1
    # The alias moves (CodeDeploy) only after the alarms point at the new version.
    graph = dependency_graph(default_stack, Resolver(default_stack))
    alias_id, _ = only(default_stack, "AWS::Lambda::Alias")
    for name in wired:
        assert waits_for(graph, alias_id, name), f"the alias update does not wait for {name}"
        assert waits_for(graph, name, version_id) or not any(
            m["Namespace"] == {"Ref": "MetricsNamespace"} for m in alarm_metrics(alarms[name]))


def test_every_rollback_alarm_gets_data_with_provisioned_concurrency(default_stack):
    # Init duration is only reported for on-demand inits (platform.report); with provisioned
    # concurrency an alarm on it sees no data and passes every canary, so none is wired.
    _, group = only(default_stack, "AWS::CodeDeploy::DeploymentGroup")
    alarms = of_type(default_stack, "AWS::CloudWatch::Alarm")
    for a in group["Properties"]["AlarmConfiguration"]["Alarms"]:
        alarm = alarms[a["Name"]["Ref"]]
        names = [alarm["Properties"].get("MetricName")] + [m["MetricName"] for m in alarm_metrics(alarm)]
        assert "InitDuration" not in names, a


# ------------------------------------------------------------------------------------------------
# 7. The stage with access logs waits for the account's CloudWatch role
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("configure", ["true", "false"])
def test_stage_waits_for_the_api_gateway_account_setting(configure):
    overrides = {"ConfigureApiGatewayAccount": configure}
    out = translate(overrides)
    resolver = Resolver(out, overrides)
    graph = dependency_graph(out, resolver)  # also fails on a dependency on a resource not created
    stage_id, stage = only(out, "AWS::ApiGateway::Stage")
    assert "AccessLogSetting" in stage["Properties"]
    if configure == "true":
        assert waits_for(graph, stage_id, "ApiGatewayAccount")
    else:
        assert "ApiGatewayAccount" not in graph


# ------------------------------------------------------------------------------------------------
# Rules: AutoScalingMaxCapacity against ProvisionedConcurrency
# ------------------------------------------------------------------------------------------------

def rules_pass(overrides: dict[str, str]) -> bool:
    resolver = Resolver(TEMPLATE, overrides)
    for rule in TEMPLATE.get("Rules", {}).values():
        if "RuleCondition" in rule and not resolver.value(rule["RuleCondition"]):
            continue
        if not all(resolver.value(a["Assert"]) for a in rule["Assertions"]):
            return False
    return True


def test_rules_refuse_a_maximum_below_provisioned_concurrency():
    assert "Rules" in TEMPLATE
    pc_spec = TEMPLATE["Parameters"]["ProvisionedConcurrency"]
    max_spec = TEMPLATE["Parameters"]["AutoScalingMaxCapacity"]
    for pc in range(pc_spec["MinValue"], pc_spec["MaxValue"] + 1):
        for mx in list(range(0, 45)) + [max_spec["MaxValue"]]:
            ok = mx == 0 or (pc > 0 and mx >= pc)
            got = rules_pass({"ProvisionedConcurrency": str(pc), "AutoScalingMaxCapacity": str(mx)})
            assert got == ok, f"ProvisionedConcurrency={pc} AutoScalingMaxCapacity={mx}: rules say {got}"


def test_the_translator_keeps_the_rules(default_stack):
    assert default_stack["Rules"] == TEMPLATE["Rules"]


# ------------------------------------------------------------------------------------------------
# README: deploy commands (6: arm64; ECR push; template size)
# ------------------------------------------------------------------------------------------------

README = (cfn.REPO / "README.md").read_text()


def shell_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    commands = []
    for block in blocks:
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.split(" #")[0].strip()
            if line:
                commands.append(line)
    return commands


def test_readme_builds_the_image_for_the_chosen_architecture():
    builds = [c for c in shell_commands() if re.search(r"\bsam build\b", c)]
    assert builds, "README shows sam build"
    for c in builds:
        # sam build resolves Architectures from parameter defaults unless told: arm64 would get an
        # x86_64 image. --guided answers are saved for deploy only.
        assert re.search(r"--parameter-overrides\b.*\bArchitecture=", c), c
    deploys = [c for c in shell_commands() if re.search(r"\bsam deploy\b", c)]
    for c in deploys:
        assert re.search(r"\bArchitecture=", c), f"deploy must state the architecture it built: {c}"


def test_readme_pushes_an_image_lambda_accepts():
    for c in shell_commands():
        if re.search(r"\bdocker (buildx )?build\b", c):
            # An attestation makes the push an image index, which Lambda rejects.
            assert "--provenance=false" in c, c


def test_readme_deploys_upload_the_template_when_it_is_too_large_to_send_inline():
    if cfn.TEMPLATE.stat().st_size <= 51_200:
        pytest.skip("template small enough for an inline TemplateBody")
    explicit = [c for c in shell_commands() if re.search(r"\bsam deploy\b", c) and "--stack-name" in c]
    assert explicit, "README shows a sam deploy that does not rely on samconfig.toml"
    for c in explicit:
        # --guided (and the samconfig.toml it writes) sets up a bucket; a deploy that names its
        # own stack must ask for one.
        assert "--resolve-s3" in c or "--s3-bucket" in c, c
