package dev.polyshop.esshim;

import java.io.Reader;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;
import org.apache.lucene.analysis.charfilter.HTMLStripCharFilter;
import org.apache.lucene.analysis.charfilter.MappingCharFilter;
import org.apache.lucene.analysis.charfilter.NormalizeCharMap;
import org.apache.lucene.analysis.pattern.PatternReplaceCharFilter;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.AbstractCharFilterFactory;
import org.elasticsearch.index.analysis.CharFilterFactory;
import org.elasticsearch.index.analysis.NormalizingCharFilterFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;

/** Char filters of analysis-common: mapping, pattern_replace, html_strip. */
final class CharFilters {
    private CharFilters() {}

    static Map<String, AnalysisProvider<CharFilterFactory>> all() {
        Map<String, AnalysisProvider<CharFilterFactory>> m = new HashMap<>();
        m.put("mapping", AnalysisPlugin.requiresAnalysisSettings(Mapping::new));
        m.put("pattern_replace", AnalysisPlugin.requiresAnalysisSettings(PatternReplace::new));
        m.put("html_strip", HtmlStrip::new);
        return Map.copyOf(m);
    }

    /** Java regex flags by name, "|"-separated (CASE_INSENSITIVE|COMMENTS), as ES reads them. */
    static int regexFlags(String names) {
        int flags = 0;
        for (String name : names.split("\\|")) {
            String n = name.trim().toUpperCase(Locale.ROOT);
            if (n.isEmpty()) {
                continue;
            }
            flags |= switch (n) {
                case "CANON_EQ" -> Pattern.CANON_EQ;
                case "CASE_INSENSITIVE" -> Pattern.CASE_INSENSITIVE;
                case "COMMENTS" -> Pattern.COMMENTS;
                case "DOTALL" -> Pattern.DOTALL;
                case "LITERAL" -> Pattern.LITERAL;
                case "MULTILINE" -> Pattern.MULTILINE;
                case "UNICODE_CASE" -> Pattern.UNICODE_CASE;
                case "UNICODE_CHARACTER_CLASS" -> Pattern.UNICODE_CHARACTER_CLASS;
                case "UNIX_LINES" -> Pattern.UNIX_LINES;
                default -> throw new IllegalArgumentException("Unknown regex flag [" + name + "]");
            };
        }
        return flags;
    }

    static final class Mapping extends AbstractCharFilterFactory implements NormalizingCharFilterFactory {
        private final NormalizeCharMap map;

        Mapping(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "mappings", "mappings_path");
            List<String> rules = Params.lines(env, s, "mappings", "mappings_path");
            if (rules == null) {
                throw new IllegalArgumentException("mapping requires either `mappings` or `mappings_path` to be configured");
            }
            NormalizeCharMap.Builder builder = new NormalizeCharMap.Builder();
            for (String rule : rules) {
                if (rule.isBlank()) {
                    continue;
                }
                int arrow = rule.indexOf("=>");
                if (arrow < 0) {
                    throw new IllegalArgumentException("Invalid Mapping Rule : [" + rule + "]");
                }
                String from = unescape(rule.substring(0, arrow).trim());
                String to = unescape(rule.substring(arrow + 2).trim());
                if (from.isEmpty()) {
                    throw new IllegalArgumentException("Invalid Mapping Rule : [" + rule + "]");
                }
                builder.add(from, to);
            }
            map = builder.build();
        }

        /** \\n \\t \\r \\b \\f \\uXXXX and \\x (any other char taken literally). */
        static String unescape(String s) {
            StringBuilder out = new StringBuilder();
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c != '\\' || i + 1 == s.length()) {
                    out.append(c);
                    continue;
                }
                char e = s.charAt(++i);
                switch (e) {
                    case 'n' -> out.append('\n');
                    case 't' -> out.append('\t');
                    case 'r' -> out.append('\r');
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'u' -> {
                        if (i + 4 > s.length() - 1) {
                            throw new IllegalArgumentException("Invalid escaped char in [" + s + "]");
                        }
                        out.append((char) Integer.parseInt(s.substring(i + 1, i + 5), 16));
                        i += 4;
                    }
                    default -> out.append(e);
                }
            }
            return out.toString();
        }

        @Override
        public Reader create(Reader reader) {
            return new MappingCharFilter(map, reader);
        }
    }

    static final class PatternReplace extends AbstractCharFilterFactory implements NormalizingCharFilterFactory {
        private final Pattern pattern;
        private final String replacement;

        PatternReplace(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "pattern", "replacement", "flags");
            String p = s.get("pattern");
            if (p == null || p.isEmpty()) {
                throw new IllegalArgumentException("pattern is missing for [" + name + "] char filter of type 'pattern_replace'");
            }
            pattern = Pattern.compile(p, regexFlags(s.get("flags", "")));
            replacement = s.get("replacement", "");
        }

        @Override
        public Reader create(Reader reader) {
            return new PatternReplaceCharFilter(pattern, replacement, reader);
        }
    }

    static final class HtmlStrip extends AbstractCharFilterFactory {
        private final java.util.Set<String> escapedTags;

        HtmlStrip(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "escaped_tags");
            escapedTags = new HashSet<>(s.getAsList("escaped_tags", List.of()));
        }

        @Override
        public Reader create(Reader reader) {
            return new HTMLStripCharFilter(reader, escapedTags);
        }
    }
}
