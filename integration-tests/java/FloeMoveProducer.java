// An idempotent acks=all Java producer for the cluster tests: writes "j-<partition>-<n>" round the
// partitions until its standard input closes, printing "ACK <partition> <offset> <value>" for each
// acknowledged record and "ERR <message>" for each failure, then "DONE" once flushed.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.StringSerializer;

public class FloeMoveProducer {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        AtomicBoolean stop = new AtomicBoolean(false);
        Thread watcher = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in))) {
                while (in.readLine() != null) { }
            } catch (Exception e) { }
            stop.set(true);
        });
        watcher.setDaemon(true);
        watcher.start();
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Object out = new Object();
        try (Producer<String, String> p = new KafkaProducer<>(pp)) {
            long n = 0;
            while (!stop.get()) {
                int part = (int) (n % partitions);
                String value = "j-" + part + "-" + (n / partitions);
                p.send(new ProducerRecord<>(topic, part, null, value), (md, err) -> {
                    synchronized (out) {
                        if (err != null) {
                            System.out.println("ERR " + err);
                        } else {
                            System.out.println("ACK " + md.partition() + " " + md.offset() + " " + value);
                        }
                    }
                });
                n++;
                if (n % 50 == 0) {
                    Thread.sleep(10);
                }
            }
            p.flush();
        }
        synchronized (out) {
            System.out.println("DONE");
            System.out.flush();
        }
    }
}
