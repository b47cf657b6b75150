// Moves a partition the way Kafka's own tools do (Admin.alterPartitionReassignments, as
// kafka-reassign-partitions.sh calls it), lists the move while it is under way, and waits until
// describeTopics names the new leader. Prints FLOE-REASSIGN-OK <ms> <leader>.
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.TopicPartition;

public class FloeReassign {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        int partition = Integer.parseInt(args[2]), to = Integer.parseInt(args[3]);
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(p)) {
            TopicPartition tp = new TopicPartition(topic, partition);
            long start = System.currentTimeMillis();
            admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(to))))).all().get();
            // The move may already be done; what is listed must be this one.
            Map<TopicPartition, PartitionReassignment> ongoing = admin.listPartitionReassignments().reassignments().get();
            PartitionReassignment r = ongoing.get(tp);
            if (r != null && !r.addingReplicas().equals(List.of(to))) throw new IllegalStateException("listed " + r);
            while (true) {
                int leader = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().get(partition).leader().id();
                if (leader == to) {
                    System.out.println("FLOE-REASSIGN-OK " + (System.currentTimeMillis() - start) + " " + leader);
                    break;
                }
                if (System.currentTimeMillis() - start > 30000) throw new IllegalStateException("leader still " + leader);
                Thread.sleep(20);
            }
            try {
                admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(to, 1))))).all().get();
                throw new IllegalStateException("two replicas accepted");
            } catch (java.util.concurrent.ExecutionException e) {
                if (!(e.getCause() instanceof org.apache.kafka.common.errors.InvalidReplicaAssignmentException)) throw e;
            }
        }
    }
}
