// Kafka transactions through the Java client: `basic` (commit, abort, read_committed, the
// TransactionManager's fenced and abortable error paths) and `ctp` (a consume-transform-produce
// loop with its offsets in each transaction, run until its input is idle).
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class FloeTxn {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static KafkaProducer<String, String> producer(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        KafkaProducer<String, String> producer = new KafkaProducer<>(p);
        producer.initTransactions();
        return producer;
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, boolean committed) {
        return consumer(bootstrap, group, committed, null);
    }

    /** With `instanceId`, a static member: a restarted instance takes its place at once. */
    static KafkaConsumer<String, String> consumer(String bootstrap, String group, boolean committed, String instanceId) {
        Properties c = new Properties();
        if (instanceId != null) c.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instanceId);
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, committed ? "read_committed" : "read_uncommitted");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return new KafkaConsumer<>(c);
    }

    /** Every value of `topic` a consumer sees until nothing new came for 2 s. */
    static List<String> readAll(String bootstrap, String topic, boolean committed) {
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(bootstrap, "reader-" + UUID.randomUUID(), committed)) {
            c.subscribe(List.of(topic));
            long idleSince = System.currentTimeMillis();
            long deadline = idleSince + 60_000;
            while (System.currentTimeMillis() - idleSince < 2_000 && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                if (!rs.isEmpty() || c.assignment().isEmpty()) idleSince = System.currentTimeMillis();
                for (ConsumerRecord<String, String> r : rs) out.add(r.value());
            }
        }
        return out;
    }

    static void basic(String bootstrap, String topic) throws Exception {
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1).configs(Map.of("max.message.bytes", "2000"))))
                .all().get(30, TimeUnit.SECONDS);
        }
        String txnId = "java-" + topic;
        KafkaProducer<String, String> p = producer(bootstrap, txnId);
        p.beginTransaction();
        for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(topic, "k" + i, "c" + i));
        p.commitTransaction();
        p.beginTransaction();
        for (int i = 0; i < 5; i++) p.send(new ProducerRecord<>(topic, "k" + i, "a" + i));
        p.flush();
        p.abortTransaction();

        // An abortable error: the broker refuses a record over max.message.bytes; the
        // transaction is aborted and the producer goes on.
        p.beginTransaction();
        p.send(new ProducerRecord<>(topic, "ok", "a-before-the-error"));
        try {
            p.send(new ProducerRecord<>(topic, "big", "x".repeat(5000))).get(30, TimeUnit.SECONDS);
            check(false, "a record over max.message.bytes is refused");
        } catch (ExecutionException e) {
            check(e.getCause() instanceof RecordTooLargeException, "RecordTooLargeException, got " + e.getCause());
        }
        try {
            p.commitTransaction();
            check(false, "a transaction with a failed send cannot commit");
        } catch (KafkaException e) {
            // the transaction is in an abortable error state
        }
        p.abortTransaction();
        p.beginTransaction();
        for (int i = 0; i < 3; i++) p.send(new ProducerRecord<>(topic, "k" + i, "c" + (10 + i)));
        p.commitTransaction();

        // A second producer with the same id fences the first.
        p.beginTransaction();
        p.send(new ProducerRecord<>(topic, "z", "a-zombie")).get(30, TimeUnit.SECONDS);
        KafkaProducer<String, String> successor = producer(bootstrap, txnId);
        try {
            p.send(new ProducerRecord<>(topic, "z", "a-zombie-2")).get(30, TimeUnit.SECONDS);
            p.commitTransaction();
            check(false, "the fenced producer cannot commit");
        } catch (ProducerFencedException | InvalidProducerEpochException e) {
            System.out.println("fenced: " + e.getClass().getSimpleName());
        } catch (ExecutionException e) {
            check(e.getCause() instanceof ProducerFencedException || e.getCause() instanceof InvalidProducerEpochException,
                "fenced, got " + e.getCause());
            System.out.println("fenced: " + e.getCause().getClass().getSimpleName());
        } catch (KafkaException e) {
            check(e.getCause() instanceof ProducerFencedException || e.getCause() instanceof InvalidProducerEpochException,
                "fenced, got " + e);
            System.out.println("fenced: " + e.getCause().getClass().getSimpleName());
        }
        p.close(Duration.ofSeconds(5));
        successor.beginTransaction();
        successor.send(new ProducerRecord<>(topic, "s", "c-successor"));
        successor.commitTransaction();
        successor.close();

        List<String> committed = readAll(bootstrap, topic, true);
        List<String> all = readAll(bootstrap, topic, false);
        Set<String> expected = new TreeSet<>();
        for (int i = 0; i < 13; i++) expected.add("c" + i);
        expected.add("c-successor");
        check(committed.size() == expected.size() && new TreeSet<>(committed).equals(expected), "read_committed saw " + committed);
        check(all.stream().anyMatch(v -> v.startsWith("a")), "read_uncommitted sees the aborted records too");
        System.out.println("FLOE-JAVA-TXN-OK " + committed.size());
    }

    /** Consume-transform-produce until the input has been idle for `idleMs`. */
    static void ctp(String bootstrap, String in, String out, String group, String txnId, long idleMs) {
        KafkaProducer<String, String> p = producer(bootstrap, txnId);
        try (KafkaConsumer<String, String> c = consumer(bootstrap, group, true, "ctp-" + txnId)) {
            c.subscribe(List.of(in));
            long idleSince = System.currentTimeMillis();
            long n = 0;
            while (System.currentTimeMillis() - idleSince < idleMs) {
                ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                if (rs.isEmpty()) continue;
                idleSince = System.currentTimeMillis();
                p.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<String, String> r : rs) {
                    p.send(new ProducerRecord<>(out, r.key(), "out-" + r.value()));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                p.sendOffsetsToTransaction(offsets, c.groupMetadata());
                p.commitTransaction();
                n += rs.count();
                System.out.println("committed " + n);
            }
        }
        p.close();
        System.out.println("FLOE-JAVA-CTP-DONE");
    }

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "basic" -> basic(args[1], args[2]);
            case "ctp" -> ctp(args[1], args[2], args[3], args[4], args[5], Long.parseLong(args[6]));
            default -> throw new IllegalArgumentException(args[0]);
        }
    }
}
