// Debezium's Postgres connector in its embedded engine, as Debezium Server's Kafka sink runs it:
// change events converted by a Connect converter (JSON with schemas, Confluent Avro or Protobuf
// against a registry) and sent by a KafkaProducer to Floe; the engine's offsets kept in a
// compacted topic on Floe (KafkaOffsetBackingStore). Runs until killed.
//
// Args: bootstrap registry-url converter(json|avro|protobuf) pg-port database prefix slot [connector.json]
// A connector.json (Kafka Connect's connector config, as docker-compose registers it) sets the
// connector's properties; this host's Postgres address, the offsets and the converters stay ours.
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import io.debezium.embedded.Connect;
import java.util.*;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.storage.Converter;

public class DebeziumToFloe {
    static Converter converter(String kind, String registry, boolean isKey) throws Exception {
        Map<String, Object> cfg = new HashMap<>();
        Converter c;
        switch (kind) {
            case "json" -> {
                c = new org.apache.kafka.connect.json.JsonConverter();
                cfg.put("schemas.enable", "true");
            }
            case "avro" -> {
                c = (Converter) Class.forName("io.confluent.connect.avro.AvroConverter").getDeclaredConstructor().newInstance();
                cfg.put("schema.registry.url", registry);
            }
            case "protobuf" -> {
                c = (Converter) Class.forName("io.confluent.connect.protobuf.ProtobufConverter").getDeclaredConstructor().newInstance();
                cfg.put("schema.registry.url", registry);
                // Optional columns as wrapper messages, so that NULL stays NULL (proto3 has no null).
                cfg.put("wrapper.for.nullables", "true");
            }
            default -> throw new IllegalArgumentException(kind);
        }
        c.configure(cfg, isKey);
        return c;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], registry = args[1], kind = args[2], port = args[3], db = args[4], prefix = args[5], slot = args[6];
        Converter keys = converter(kind, registry, true);
        Converter values = converter(kind, registry, false);

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp);

        Properties p = new Properties();
        p.setProperty("name", "floe-cdc-" + slot);
        p.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
        p.setProperty("offset.storage", "org.apache.kafka.connect.storage.KafkaOffsetBackingStore");
        p.setProperty("offset.storage.topic", prefix + "-offsets");
        p.setProperty("offset.storage.partitions", "1");
        p.setProperty("offset.storage.replication.factor", "1");
        p.setProperty("offset.flush.interval.ms", "500");
        p.setProperty("bootstrap.servers", bootstrap);
        p.setProperty("database.hostname", "127.0.0.1");
        p.setProperty("database.port", port);
        p.setProperty("database.user", "postgres");
        p.setProperty("database.password", "postgres");
        p.setProperty("database.dbname", db);
        p.setProperty("topic.prefix", prefix);
        p.setProperty("plugin.name", "pgoutput");
        p.setProperty("slot.name", slot);
        p.setProperty("publication.name", slot + "_pub");
        p.setProperty("skipped.operations", "none");
        p.setProperty("snapshot.mode", "initial");
        p.setProperty("poll.interval.ms", "100");
        if (args.length > 7) {
            Map<?, ?> connector = new com.fasterxml.jackson.databind.ObjectMapper().readValue(new java.io.File(args[7]), Map.class);
            for (Map.Entry<?, ?> e : connector.entrySet()) {
                String k = e.getKey().toString();
                if (!k.startsWith("database.hostname") && !k.startsWith("database.port") && !k.contains("converter")) {
                    p.setProperty(k, e.getValue().toString());
                }
            }
        }

        DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine.create(ChangeEventFormat.of(Connect.class))
            .using(p)
            .notifying((records, committer) -> {
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (RecordChangeEvent<SourceRecord> e : records) {
                    SourceRecord r = e.record();
                    byte[] k = r.key() == null ? null : keys.fromConnectData(r.topic(), r.keySchema(), r.key());
                    byte[] v = r.value() == null ? null : values.fromConnectData(r.topic(), r.valueSchema(), r.value());
                    sent.add(producer.send(new ProducerRecord<>(r.topic(), k, v)));
                }
                // Acknowledged by Floe before the engine may store its offsets past them.
                for (Future<RecordMetadata> f : sent) {
                    try {
                        f.get();
                    } catch (Exception ex) {
                        throw new InterruptedException("send failed: " + ex);
                    }
                }
                for (RecordChangeEvent<SourceRecord> e : records) committer.markProcessed(e);
                committer.markBatchFinished();
                System.out.println("sent " + records.size());
            })
            .using((success, message, error) -> {
                System.out.println("engine stopped: " + success + " " + message + (error == null ? "" : " " + error));
                if (!success) System.exit(3);
            })
            .build();
        ExecutorService ex = Executors.newSingleThreadExecutor();
        ex.execute(engine);
        System.out.println("DEBEZIUM-STARTED");
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                engine.close();
            } catch (Exception ignored) {
            }
            producer.close();
        }));
        Thread.currentThread().join();
    }
}
