// A JVM client for scripts/integration-test.sh's event-loop scenario: GETs every URL given as an
// argument at once with java.net.http.HttpClient's sendAsync (its selector thread connects them
// all on non-blocking sockets) and prints each body, or for a URL that fails the class of the
// failure's cause (java.net.ConnectException for a refused connect). Nothing here knows about the
// library.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

public class Parallel {
    public static void main(String[] args) {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(20)).build();
        List<CompletableFuture<String>> answers = new ArrayList<>();
        for (String url : args) {
            HttpRequest request = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(20)).build();
            answers.add(client.sendAsync(request, HttpResponse.BodyHandlers.ofString())
                    .thenApply(HttpResponse::body)
                    .exceptionally(e -> {
                        Throwable cause = e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
                        return cause.getClass().getName();
                    }));
        }
        for (CompletableFuture<String> answer : answers) {
            System.out.println(answer.join().trim());
        }
    }
}
