"""kprov's own DynamoDB tables (client records, locks): one way to find and to create them.

A table is created by the first write that needs it (an apply), never by a plan or a check: those
treat a missing table as empty (the read-only wall would refuse the CreateTable anyway).
"""

from __future__ import annotations

from typing import Any

from kensium_provision.aws.call import call, translating

__all__ = ["NO_TABLE", "ensure_table", "table_exists"]

NO_TABLE = ("ResourceNotFoundException",)  # DynamoDB's answer for a table that does not exist


def table_exists(dynamodb: Any, table: str) -> bool:
    """Whether `table` exists (one DescribeTable, a read: plan and check may ask)."""
    return call(dynamodb, "DescribeTable", TableName=table, missing=NO_TABLE) is not None


def ensure_table(dynamodb: Any, table: str, *, key: str, kind: str) -> bool:
    """Create `table` (on demand, PAY_PER_REQUEST, string partition key `key`, tagged `kprov:kind`) if it is
    missing, and wait until it is ACTIVE; True when this call (or another operator just now) created it."""
    if table_exists(dynamodb, table):
        return False
    call(dynamodb, "CreateTable", TableName=table, BillingMode="PAY_PER_REQUEST",
         AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
         KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
         Tags=[{"Key": "kprov:kind", "Value": kind}],
         missing=("ResourceInUseException",))  # another operator created it just now
    with translating("dynamodb", "DescribeTable", table):  # the waiter polls DescribeTable
        dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    return True
