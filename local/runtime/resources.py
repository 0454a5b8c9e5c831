"""Create the template's tables, queues, topics and log groups in the local AWS stand-in (moto).

Every resource gets the physical name ``<stack name>-<LogicalId>`` unless the template names it (FIFO
queues and topics get ``.fifo``). ``Ref`` and ``Fn::GetAtt`` are answered the way CloudFormation answers
them, for the resources created here and, with synthesized values, for everything else the runtime
serves itself (functions, layers, APIs) or does not emulate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from local.runtime.template import (
    ACCOUNT_ID,
    IMPLICIT_HTTP_API,
    IMPLICIT_REST_API,
    PARTITION,
    URL_SUFFIX,
    Template,
    TemplateError,
    TemplateResource,
    references,
    to_text,
)

ClientFactory = Callable[[str], Any]

TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable")
QUEUE_TYPE = "AWS::SQS::Queue"
TOPIC_TYPE = "AWS::SNS::Topic"
LOG_GROUP_TYPE = "AWS::Logs::LogGroup"
QUEUE_POLICY_TYPE = "AWS::SQS::QueuePolicy"
FUNCTION_TYPE = "AWS::Serverless::Function"
LAYER_TYPE = "AWS::Serverless::LayerVersion"
HTTP_API_TYPE = "AWS::Serverless::HttpApi"
REST_API_TYPE = "AWS::Serverless::Api"

PROVISIONED_TYPES = (*TABLE_TYPES, QUEUE_TYPE, TOPIC_TYPE, LOG_GROUP_TYPE, QUEUE_POLICY_TYPE)
RUNTIME_TYPES = (FUNCTION_TYPE, LAYER_TYPE, HTTP_API_TYPE, REST_API_TYPE)

_NOT_EMULATED_TYPES = {
    "AWS::CloudWatch::Alarm": "alarms are not evaluated locally",
    "AWS::CloudWatch::Dashboard": "dashboards are not emulated",
    "AWS::SNS::Subscription": "subscriptions are not delivered locally",
    "AWS::IAM::Role": "IAM is not enforced locally",
    "AWS::IAM::Policy": "IAM is not enforced locally",
    "AWS::IAM::ManagedPolicy": "IAM is not enforced locally",
    "AWS::Lambda::Permission": "IAM is not enforced locally",
}

# Settings the local stack accepts but does not act on, per resource type.
_NOT_EMULATED_PROPERTIES: dict[str, dict[str, str]] = {
    FUNCTION_TYPE: {
        "Policies": "IAM policies are not enforced locally",
        "Role": "IAM is not enforced locally",
        "VpcConfig": "VPC networking is not emulated",
        "ReservedConcurrentExecutions": "reserved concurrency is not enforced",
        "ProvisionedConcurrencyConfig": "provisioned concurrency is not emulated",
        "AutoPublishAlias": "versions and aliases are not emulated",
        "DeploymentPreference": "gradual deployments are not emulated",
        "FunctionUrlConfig": "function URLs are not served",
        "SnapStart": "SnapStart is not emulated",
        "FileSystemConfigs": "EFS mounts are not emulated",
    },
    HTTP_API_TYPE: {
        "AccessLogSettings": "access logs are not written",
        "Domain": "custom domains are not emulated",
        "CorsConfiguration": "CORS preflight responses are not emulated",
        "DefinitionBody": "OpenAPI definitions are not read; routes come from function events",
        "DefinitionUri": "OpenAPI definitions are not read; routes come from function events",
    },
    REST_API_TYPE: {
        "AccessLogSetting": "access logs are not written",
        "MethodSettings": "method settings (throttling, caching) are not emulated",
        "Cors": "CORS preflight responses are not emulated",
        "Domain": "custom domains are not emulated",
        "DefinitionBody": "OpenAPI definitions are not read; routes come from function events",
        "DefinitionUri": "OpenAPI definitions are not read; routes come from function events",
        "CacheClusterEnabled": "API caching is not emulated",
    },
    "AWS::DynamoDB::Table": {
        "PointInTimeRecoverySpecification": "backups are not emulated",
        "KinesisStreamSpecification": "Kinesis streaming is not emulated",
        "ContributorInsightsSpecification": "contributor insights are not emulated",
    },
    TOPIC_TYPE: {"Subscription": "subscriptions are not delivered locally"},
    LOG_GROUP_TYPE: {"DataProtectionPolicy": "log data protection is not emulated"},
}

_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
_TOPIC_ATTRIBUTES = ("ContentBasedDeduplication", "DisplayName", "FifoTopic", "KmsMasterKeyId")
_GSI_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")
_SIMPLE_TABLE_KEY_TYPES = {"String": "S", "Number": "N", "Binary": "B"}


@dataclass(frozen=True)
class Resource:
    """A resource as the stack knows it: names, ``Ref`` value and ``Fn::GetAtt`` attributes."""

    logical_id: str
    type: str
    physical_name: str
    ref: str
    arn: str | None = None
    url: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "physical_name": self.physical_name,
            "ref": self.ref,
            "arn": self.arn,
            "url": self.url,
        }


@dataclass(frozen=True)
class NotEmulated:
    """A resource, property or event the local stack does not act on, and why."""

    logical_id: str
    type: str
    detail: str

    def __str__(self) -> str:
        return f"{self.logical_id} ({self.type}): {self.detail}"


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def api_id(stack_name: str, logical_id: str) -> str:
    """A stable 10-character API id, shaped like API Gateway's."""
    digest = hashlib.sha256(f"{stack_name}/{logical_id}".encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:10])


def queue_url_from_arn(arn: str, endpoint: str) -> str:
    """``arn:aws:sqs:<region>:<account>:<name>`` → the local queue URL (moto's layout)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise TemplateError(f"not an SQS queue ARN: {arn}")
    return f"{endpoint.rstrip('/')}/{parts[4]}/{parts[5]}"


class StackResources:
    """Resolves ``Ref``/``Fn::GetAtt`` and provisions the resources moto can hold."""

    def __init__(self, template: Template, clients: ClientFactory) -> None:
        self.template = template
        self._clients = clients
        self._created: dict[str, Resource] = {}
        self._table_keys: dict[str, list[str]] = {}
        self._evaluator = template.evaluator(self)

    # -------------------------------------------------------------------------------- references

    @property
    def created(self) -> dict[str, Resource]:
        return dict(self._created)

    def physical_name(self, logical_id: str) -> str:
        return f"{self.template.stack_name}-{logical_id}"

    def ref(self, logical_id: str) -> Any:
        return self.describe(logical_id).ref

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.describe(logical_id)
        if attribute in resource.attributes:
            return resource.attributes[attribute]
        if resource.type in PROVISIONED_TYPES or resource.type in RUNTIME_TYPES:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: {resource.type} has no such attribute")
        return f"{resource.physical_name}.{attribute}"

    def describe(self, logical_id: str) -> Resource:
        """The created resource, or a synthesized description of one the stack does not create."""
        if logical_id in self._created:
            return self._created[logical_id]
        if logical_id in self.template.inactive:
            raise TemplateError(f"{logical_id} is referenced but {self.template.inactive[logical_id]}")
        resource = self.template.resources.get(logical_id)
        if resource is None:
            owner = self.template.resources.get(logical_id.removesuffix("Role"))
            if logical_id.endswith("Role") and owner is not None and owner.type == FUNCTION_TYPE:
                return self._role(logical_id)
            raise TemplateError(f"{logical_id} is not a resource or parameter of the template")
        if resource.type in PROVISIONED_TYPES:
            raise TemplateError(f"{logical_id} is referenced before it was created (a dependency cycle?)")
        return self._synthesize(resource)

    def _synthesize(self, resource: TemplateResource) -> Resource:
        region, stack = self.template.region, self.template.stack_name
        logical_id, properties = resource.logical_id, resource.properties
        prefix = f"arn:{PARTITION}"
        if resource.type in (FUNCTION_TYPE, "AWS::Lambda::Function"):
            name = self._name(properties.get("FunctionName"), logical_id)
            arn = f"{prefix}:lambda:{region}:{ACCOUNT_ID}:function:{name}"
            return Resource(logical_id, resource.type, name, name, arn, attributes={"Arn": arn})
        if resource.type in (LAYER_TYPE, "AWS::Lambda::LayerVersion"):
            name = self._name(properties.get("LayerName"), logical_id)
            arn = f"{prefix}:lambda:{region}:{ACCOUNT_ID}:layer:{name}:1"
            return Resource(logical_id, resource.type, name, arn, arn)
        if resource.type in (HTTP_API_TYPE, "AWS::ApiGatewayV2::Api"):
            identifier = api_id(stack, logical_id)
            endpoint = f"https://{identifier}.execute-api.{region}.{URL_SUFFIX}"
            attributes = {"ApiEndpoint": endpoint, "ApiId": identifier}
            return Resource(logical_id, resource.type, identifier, identifier, attributes=attributes)
        if resource.type in (REST_API_TYPE, "AWS::ApiGateway::RestApi"):
            identifier = api_id(stack, logical_id)
            root = api_id(stack, f"{logical_id}/root")
            attributes = {"RootResourceId": root, "RestApiId": identifier}
            return Resource(logical_id, resource.type, identifier, identifier, attributes=attributes)
        if resource.type == "AWS::IAM::Role":
            return self._role(logical_id)
        physical = self.physical_name(logical_id)
        service = resource.type.split("::")[1].lower() if resource.type.count("::") == 2 else "unknown"
        arn = f"{prefix}:{service}:{region}:{ACCOUNT_ID}:{physical}"
        return Resource(logical_id, resource.type, physical, physical, arn, attributes={"Arn": arn})

    def _role(self, logical_id: str) -> Resource:
        name = self.physical_name(logical_id)
        arn = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{name}"
        attributes = {"Arn": arn, "RoleId": api_id(self.template.stack_name, logical_id).upper()}
        return Resource(logical_id, "AWS::IAM::Role", name, name, arn, attributes=attributes)

    def _name(self, declared: Any, logical_id: str) -> str:
        return (
            self._evaluator.resolve_text(declared) if declared is not None else self.physical_name(logical_id)
        )

    # ------------------------------------------------------------------------------ provisioning

    def provision(self) -> None:
        """Create every table, queue, topic and log group, dependencies first."""
        for resource in self._creation_order():
            properties = self._evaluator.resolve(dict(resource.properties))
            if resource.type in TABLE_TYPES:
                created = self._create_table(resource, properties)
            elif resource.type == QUEUE_TYPE:
                created = self._create_queue(resource, properties)
            elif resource.type == TOPIC_TYPE:
                created = self._create_topic(resource, properties)
            elif resource.type == LOG_GROUP_TYPE:
                created = self._create_log_group(resource, properties)
            else:
                name = self.physical_name(resource.logical_id)
                created = Resource(resource.logical_id, resource.type, name, name)
            self._created[resource.logical_id] = created

    def _creation_order(self) -> list[TemplateResource]:
        nodes = {r.logical_id: r for r in self.template.resources.values() if r.type in PROVISIONED_TYPES}
        needs = {
            logical_id: (references(dict(r.properties)) | set(r.depends_on)) & set(nodes)
            for logical_id, r in nodes.items()
        }
        order: list[TemplateResource] = []
        done: set[str] = set()
        while len(order) < len(nodes):
            ready = [
                logical_id for logical_id in nodes if logical_id not in done and needs[logical_id] <= done
            ]
            if not ready:
                cycle = sorted(set(nodes) - done)
                raise TemplateError(f"dependency cycle between {', '.join(cycle)}")
            for logical_id in ready:
                order.append(nodes[logical_id])
                done.add(logical_id)
        return order

    def _create_queue(self, resource: TemplateResource, properties: dict[str, Any]) -> Resource:
        sqs = self._clients("sqs")
        fifo = truthy(properties.get("FifoQueue"))
        name = to_text(properties.get("QueueName") or self.physical_name(resource.logical_id))
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {key: to_text(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
        for key in ("RedrivePolicy", "RedriveAllowPolicy"):
            policy = properties.get(key)
            if isinstance(policy, dict):
                if "maxReceiveCount" in policy:
                    policy = {**policy, "maxReceiveCount": int(to_text(policy["maxReceiveCount"]))}
                attributes[key] = json.dumps(policy)
            elif policy is not None:
                attributes[key] = to_text(policy)
        url = sqs.create_queue(QueueName=name, Attributes=attributes, tags=_tags(properties))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        values = {"Arn": arn, "QueueName": name, "QueueUrl": url}
        return Resource(resource.logical_id, resource.type, name, url, arn, url, values)

    def _create_table(self, resource: TemplateResource, properties: dict[str, Any]) -> Resource:
        dynamodb = self._clients("dynamodb")
        name = to_text(properties.get("TableName") or self.physical_name(resource.logical_id))
        request = (
            _simple_table_request(properties)
            if resource.type == "AWS::Serverless::SimpleTable"
            else _table_request(properties)
        )
        try:
            table = dynamodb.create_table(TableName=name, **request)["TableDescription"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            table = dynamodb.describe_table(TableName=name)["Table"]
        ttl = properties.get("TimeToLiveSpecification") or {}
        if truthy(ttl.get("Enabled")):
            spec = {"Enabled": True, "AttributeName": to_text(ttl["AttributeName"])}
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=spec)
        self._table_keys[resource.logical_id] = [key["AttributeName"] for key in request["KeySchema"]]
        values = {"Arn": table["TableArn"]}
        if table.get("LatestStreamArn"):
            values["StreamArn"] = table["LatestStreamArn"]
        return Resource(resource.logical_id, resource.type, name, name, table["TableArn"], attributes=values)

    def _create_topic(self, resource: TemplateResource, properties: dict[str, Any]) -> Resource:
        sns = self._clients("sns")
        name = to_text(properties.get("TopicName") or self.physical_name(resource.logical_id))
        if truthy(properties.get("FifoTopic")) and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {key: to_text(properties[key]) for key in _TOPIC_ATTRIBUTES if key in properties}
        tags = [{"Key": key, "Value": value} for key, value in _tags(properties).items()]
        arn = sns.create_topic(Name=name, Attributes=attributes, Tags=tags)["TopicArn"]
        values = {"TopicArn": arn, "TopicName": name}
        return Resource(resource.logical_id, resource.type, name, arn, arn, attributes=values)

    def _create_log_group(self, resource: TemplateResource, properties: dict[str, Any]) -> Resource:
        logs = self._clients("logs")
        name = to_text(properties.get("LogGroupName") or self.physical_name(resource.logical_id))
        try:
            logs.create_log_group(logGroupName=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
        if "RetentionInDays" in properties:
            days = int(to_text(properties["RetentionInDays"]))
            logs.put_retention_policy(logGroupName=name, retentionInDays=days)
        arn = f"arn:{PARTITION}:logs:{self.template.region}:{ACCOUNT_ID}:log-group:{name}:*"
        return Resource(resource.logical_id, resource.type, name, name, arn, attributes={"Arn": arn})

    # --------------------------------------------------------------------------------- reporting

    def not_emulated(self) -> list[NotEmulated]:
        """Resources and settings the stack accepts without acting on them."""
        report: list[NotEmulated] = []
        for resource in self.template.resources.values():
            if resource.type.startswith("AWS::KMS::"):
                report.append(
                    NotEmulated(resource.logical_id, resource.type, "encryption keys are not emulated")
                )
            elif resource.type in _NOT_EMULATED_TYPES:
                report.append(
                    NotEmulated(resource.logical_id, resource.type, _NOT_EMULATED_TYPES[resource.type])
                )
            elif resource.type not in PROVISIONED_TYPES and resource.type not in RUNTIME_TYPES:
                report.append(
                    NotEmulated(resource.logical_id, resource.type, "resource type is not emulated")
                )
            for name, detail in _NOT_EMULATED_PROPERTIES.get(resource.type, {}).items():
                if name in resource.properties and resource.logical_id not in (
                    IMPLICIT_HTTP_API,
                    IMPLICIT_REST_API,
                ):
                    report.append(NotEmulated(resource.logical_id, resource.type, f"{name}: {detail}"))
        return report

    # ------------------------------------------------------------------------------------- reset

    def reset(self) -> None:
        """Purge every queue and delete every table item; the resources themselves stay."""
        sqs, dynamodb = self._clients("sqs"), self._clients("dynamodb")
        for resource in self._created.values():
            if resource.type == QUEUE_TYPE:
                sqs.purge_queue(QueueUrl=resource.url)
            elif resource.type in TABLE_TYPES:
                _empty_table(dynamodb, resource.physical_name, self._table_keys[resource.logical_id])


def _tags(properties: Mapping[str, Any]) -> dict[str, str]:
    tags = properties.get("Tags") or []
    if isinstance(tags, dict):
        return {key: to_text(value) for key, value in tags.items()}
    return {to_text(tag["Key"]): to_text(tag["Value"]) for tag in tags}


def _table_request(properties: Mapping[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": to_text(properties.get("BillingMode", "PROVISIONED")),
    }
    if "ProvisionedThroughput" in properties:
        request["ProvisionedThroughput"] = _throughput(properties["ProvisionedThroughput"])
    elif request["BillingMode"] == "PROVISIONED":
        raise TemplateError("a PROVISIONED table needs ProvisionedThroughput")
    indexes = []
    for index in properties.get("GlobalSecondaryIndexes") or []:
        entry = {key: index[key] for key in _GSI_KEYS if key in index}
        if "ProvisionedThroughput" in entry:
            entry["ProvisionedThroughput"] = _throughput(entry["ProvisionedThroughput"])
        indexes.append(entry)
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    local_indexes = [
        {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        for index in properties.get("LocalSecondaryIndexes") or []
    ]
    if local_indexes:
        request["LocalSecondaryIndexes"] = local_indexes
    stream = properties.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    sse = properties.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {"Enabled": truthy(sse.get("SSEEnabled"))} | {
            key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse
        }
    if "DeletionProtectionEnabled" in properties:
        request["DeletionProtectionEnabled"] = truthy(properties["DeletionProtectionEnabled"])
    tags = [{"Key": key, "Value": value} for key, value in _tags(properties).items()]
    if tags:
        request["Tags"] = tags
    return request


def _simple_table_request(properties: Mapping[str, Any]) -> dict[str, Any]:
    key = properties.get("PrimaryKey") or {"Name": "id", "Type": "String"}
    key_type = _SIMPLE_TABLE_KEY_TYPES[to_text(key.get("Type", "String"))]
    request: dict[str, Any] = {
        "AttributeDefinitions": [{"AttributeName": to_text(key["Name"]), "AttributeType": key_type}],
        "KeySchema": [{"AttributeName": to_text(key["Name"]), "KeyType": "HASH"}],
    }
    if "ProvisionedThroughput" in properties:
        request["BillingMode"] = "PROVISIONED"
        request["ProvisionedThroughput"] = _throughput(properties["ProvisionedThroughput"])
    else:
        request["BillingMode"] = "PAY_PER_REQUEST"
    return request


def _throughput(value: Mapping[str, Any]) -> dict[str, int]:
    return {key: int(to_text(number)) for key, number in value.items()}


def _empty_table(dynamodb: Any, name: str, key_names: list[str]) -> None:
    names = {f"#k{index}": key for index, key in enumerate(key_names)}
    scan: dict[str, Any] = {
        "TableName": name,
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
    }
    while True:
        page = dynamodb.scan(**scan)
        items = page.get("Items", [])
        for start in range(0, len(items), 25):
            requests = [{"DeleteRequest": {"Key": item}} for item in items[start : start + 25]]
            dynamodb.batch_write_item(RequestItems={name: requests})
        if "LastEvaluatedKey" not in page:
            return
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
