"""kafka-python and aiokafka against Floe: produce, consume, groups, admin."""

import asyncio
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def test_kafka_python_produce_consume_group_and_admin(floe, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=floe.bootstrap, request_timeout_ms=30000)
    admin.create_topics([NewTopic(topic_name, num_partitions=2, replication_factor=1)])
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic_name, num_partitions=2, replication_factor=1)])
    assert topic_name in admin.list_topics()
    producer = KafkaProducer(bootstrap_servers=floe.bootstrap, acks="all", compression_type="gzip", linger_ms=5)
    futures = [producer.send(topic_name, key=str(i).encode(), value=f"kp-{i}".encode()) for i in range(400)]
    producer.flush(30)
    metas = [f.get(timeout=30) for f in futures]
    assert {m.partition for m in metas} == {0, 1}
    producer.close()
    consumer = KafkaConsumer(topic_name, bootstrap_servers=floe.bootstrap, group_id="kp-group",
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=10000)
    got = []
    for m in consumer:
        got.append(m.value)
        if len(got) == 400:
            break
    consumer.commit()
    committed = {p: consumer.committed(TopicPartition(topic_name, p)) for p in (0, 1)}
    consumer.close()
    assert sorted(got) == sorted(f"kp-{i}".encode() for i in range(400))
    assert sum(committed.values()) == 400
    offsets = admin.list_group_offsets({"kp-group": None})["kp-group"]
    assert {tp.partition: om.offset for tp, om in offsets.items()} == committed
    groups = {g["group_id"]: g for g in admin.list_groups()}
    assert groups["kp-group"]["protocol_type"] == "consumer"
    assert groups["kp-group"]["group_state"] == "Empty", "the consumer left" 
    admin.delete_topics([topic_name])
    deadline = time.time() + 10
    while topic_name in admin.list_topics() and time.time() < deadline:
        time.sleep(0.2)
    assert topic_name not in admin.list_topics()
    admin.close()


def test_aiokafka_produce_consume_and_group(floe, topic_name):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=floe.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for i in range(300):
                await producer.send(topic_name, f"aio-{i}".encode(), key=str(i % 7).encode())
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=floe.bootstrap, group_id="aio-group",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got = []
        try:
            async with asyncio.timeout(60):
                async for m in consumer:
                    got.append(m.value)
                    if len(got) == 300:
                        break
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(run())
    assert sorted(got) == sorted(f"aio-{i}".encode() for i in range(300))
