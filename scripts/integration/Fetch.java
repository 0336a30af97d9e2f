// A JVM client for scripts/integration-test.sh: GETs the URL given as its argument with the JDK's
// own java.net.http.HttpClient and prints the body; exits 1 on a status other than 200. The test
// trusts its CA through -Djavax.net.ssl.trustStore. Nothing here knows about the library.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

public class Fetch {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(20)).build();
        HttpRequest request = HttpRequest.newBuilder(URI.create(args[0]))
                .timeout(Duration.ofSeconds(20))
                .build();
        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        System.out.print(response.body());
        if (response.statusCode() != 200) {
            System.err.println("Fetch: HTTP " + response.statusCode());
            System.exit(1);
        }
    }
}
