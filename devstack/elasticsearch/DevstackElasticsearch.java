// Launches one Elasticsearch node for the native dev stack (a TEST-STACK SHIM; see
// docs/search.md). Real deployments use Elastic's distribution or image.
//
// Why not Elastic's start-up command: it runs the server under an entitlement agent that
// is not published on Maven Central. The server's public Node entry point starts a node
// in this one JVM instead, with the server jars on the module path and the plugins it
// needs under <home>/modules/ (transport-netty4 for HTTP, polyshop-shim for GET / and
// the analysis components).
//
// Compiled once at install (devstack/_install.py), run as
//   java --module-path <home>/lib --add-modules ALL-MODULE-PATH -cp <launcher dir>
//        DevstackElasticsearch <home> <config dir> key=value...
// where every key=value is a node setting (path.data, http.port, ...).
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

public class DevstackElasticsearch {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: DevstackElasticsearch <home> <config dir> [key=value...]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Path config = Path.of(args[1]).toAbsolutePath();
        Settings.Builder settings = Settings.builder().put("path.home", home.toString());
        for (int i = 2; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            if (kv.length != 2) {
                System.err.println("not key=value: " + args[i]);
                System.exit(2);
            }
            settings.put(kv[0], kv[1]);
        }
        Node node;
        try {
            LogConfigurator.configureESLogging(); // before any server class logs
            LogConfigurator.registerErrorListener();
            Environment env = InternalSettingsPreparer.prepareEnvironment(
                settings.build(), Map.of(), config, () -> "devstack"
            );
            LogConfigurator.setNodeName(env.settings().get("node.name", "devstack"));
            LogConfigurator.configure(env, true); // <config>/log4j2.properties: the console
            PluginsLoader plugins = PluginsLoader.createPluginsLoader(
                PluginsLoader.loadModulesBundles(env.modulesDir(), true),
                PluginsLoader.loadPluginsBundles(env.pluginsDir(), true),
                Map.of()
            );
            node = new Node(env, plugins);
        } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
            return;
        }
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.prepareForClose();
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "devstack-es-shutdown"));
        try {
            node.start();
        } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
        }
        closed.await();
    }
}
