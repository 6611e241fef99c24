package dev.polyshop.esshim;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;

/** Settings helpers shared by the components. */
final class Params {
    private Params() {}

    /** Refuse a setting the shim does not implement: better an error naming it than a
     * component that silently behaves unlike Elasticsearch's. */
    static void allow(String component, Settings settings, String... known) {
        Set<String> allowed = Set.of(known);
        for (String key : settings.keySet()) {
            String top = key.split("\\.", 2)[0];
            // "index.*": the index's own settings, handed to every component by the server
            if (top.equals("type") || top.equals("index") || allowed.contains(top)) {
                continue;
            }
            throw new IllegalArgumentException(
                "[" + component + "]: setting [" + top + "] is not supported by the polyshop devstack shim"
            );
        }
    }

    static int intValue(Settings settings, String key, int defaultValue) {
        return settings.getAsInt(key, defaultValue);
    }

    static boolean bool(Settings settings, String key, boolean defaultValue) {
        return settings.getAsBoolean(key, defaultValue);
    }

    /** An inline list ({@code listKey}) or the lines of a file relative to the config
     * directory ({@code pathKey}); {@code null} when neither is set. */
    static List<String> lines(Environment env, Settings settings, String listKey, String pathKey) {
        if (settings.get(listKey) != null || !settings.getAsList(listKey, List.of()).isEmpty()) {
            return settings.getAsList(listKey, List.of());
        }
        String path = settings.get(pathKey);
        if (path == null) {
            return null;
        }
        Path file = env.configDir().resolve(path).normalize();
        if (!file.startsWith(env.configDir().normalize())) {
            throw new IllegalArgumentException("[" + pathKey + "] must lie under the config directory: " + path);
        }
        try {
            List<String> out = new ArrayList<>();
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                if (!line.startsWith("#")) {
                    out.add(line);
                }
            }
            return out;
        } catch (IOException e) {
            throw new IllegalArgumentException("IOException while reading " + pathKey + ": " + file, e);
        }
    }
}
