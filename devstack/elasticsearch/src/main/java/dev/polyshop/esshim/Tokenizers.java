package dev.polyshop.esshim;

import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.IntPredicate;
import java.util.regex.Pattern;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.core.KeywordTokenizer;
import org.apache.lucene.analysis.core.LetterTokenizer;
import org.apache.lucene.analysis.core.WhitespaceTokenizer;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenizer;
import org.apache.lucene.analysis.ngram.NGramTokenizer;
import org.apache.lucene.analysis.path.PathHierarchyTokenizer;
import org.apache.lucene.analysis.path.ReversePathHierarchyTokenizer;
import org.apache.lucene.analysis.pattern.PatternTokenizer;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.AbstractTokenizerFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;

/** Tokenizers of analysis-common (the server itself has only {@code standard}). */
final class Tokenizers {
    private Tokenizers() {}

    static Map<String, AnalysisProvider<TokenizerFactory>> all() {
        Map<String, AnalysisProvider<TokenizerFactory>> m = new HashMap<>();
        m.put("keyword", (is, env, name, s) -> {
            Params.allow(name, s, "buffer_size");
            int size = Params.intValue(s, "buffer_size", 256);
            return TokenizerFactory.newFactory(name, () -> new KeywordTokenizer(size));
        });
        m.put("whitespace", (is, env, name, s) -> {
            Params.allow(name, s, "max_token_length");
            int max = Params.intValue(s, "max_token_length", 255);
            return TokenizerFactory.newFactory(name, () -> new WhitespaceTokenizer(WhitespaceTokenizer.DEFAULT_TOKEN_ATTRIBUTE_FACTORY, max));
        });
        m.put("letter", (is, env, name, s) -> {
            Params.allow(name, s);
            return TokenizerFactory.newFactory(name, LetterTokenizer::new);
        });
        m.put("uax_url_email", (is, env, name, s) -> {
            Params.allow(name, s, "max_token_length");
            int max = Params.intValue(s, "max_token_length", 255);
            return TokenizerFactory.newFactory(name, () -> {
                UAX29URLEmailTokenizer t = new UAX29URLEmailTokenizer();
                t.setMaxTokenLength(max);
                return t;
            });
        });
        m.put("path_hierarchy", PathHierarchy::new);
        m.put("pattern", PatternFactory::new);
        m.put("edge_ngram", (is, env, name, s) -> new NGrams(is, name, s, true));
        m.put("ngram", (is, env, name, s) -> new NGrams(is, name, s, false));
        return Map.copyOf(m);
    }

    static final class PathHierarchy extends AbstractTokenizerFactory {
        private final int bufferSize;
        private final char delimiter;
        private final char replacement;
        private final int skip;
        private final boolean reverse;

        PathHierarchy(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "delimiter", "replacement", "buffer_size", "reverse", "skip");
            bufferSize = Params.intValue(s, "buffer_size", 1024);
            delimiter = oneChar(s, "delimiter", PathHierarchyTokenizer.DEFAULT_DELIMITER);
            replacement = oneChar(s, "replacement", delimiter);
            skip = Params.intValue(s, "skip", 0);
            reverse = Params.bool(s, "reverse", false);
        }

        private static char oneChar(Settings s, String key, char defaultValue) {
            String value = s.get(key);
            if (value == null) {
                return defaultValue;
            }
            if (value.length() != 1) {
                throw new IllegalArgumentException(key + " can only be a one char value");
            }
            return value.charAt(0);
        }

        @Override
        public Tokenizer create() {
            return reverse
                ? new ReversePathHierarchyTokenizer(bufferSize, delimiter, replacement, skip)
                : new PathHierarchyTokenizer(bufferSize, delimiter, replacement, skip);
        }
    }

    static final class PatternFactory extends AbstractTokenizerFactory {
        private final Pattern pattern;
        private final int group;

        PatternFactory(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "pattern", "flags", "group");
            pattern = Pattern.compile(s.get("pattern", "\\W+"), CharFilters.regexFlags(s.get("flags", "")));
            group = Params.intValue(s, "group", -1);
        }

        @Override
        public Tokenizer create() {
            return new PatternTokenizer(pattern, group);
        }
    }

    /** ngram / edge_ngram with {@code token_chars} (letter, digit, whitespace,
     * punctuation, symbol, custom + {@code custom_token_chars}). */
    static final class NGrams extends AbstractTokenizerFactory {
        private final boolean edge;
        private final int minGram;
        private final int maxGram;
        private final IntPredicate tokenChar;

        NGrams(IndexSettings is, String name, Settings s, boolean edge) {
            super(name);
            Params.allow(name, s, "min_gram", "max_gram", "token_chars", "custom_token_chars");
            this.edge = edge;
            minGram = Params.intValue(s, "min_gram", 1);
            maxGram = Params.intValue(s, "max_gram", 2);
            if (!edge && is != null && maxGram - minGram > is.getMaxNgramDiff()) {
                throw new IllegalArgumentException(
                    "The difference between max_gram and min_gram in NGram Tokenizer must be less than or equal to: ["
                        + is.getMaxNgramDiff() + "] but was [" + (maxGram - minGram) + "]. This limit can be set by changing the ["
                        + IndexSettings.MAX_NGRAM_DIFF_SETTING.getKey() + "] index level setting."
                );
            }
            List<String> chars = s.getAsList("token_chars", List.of());
            String custom = s.get("custom_token_chars", "");
            IntPredicate p = null;
            for (String c : chars) {
                IntPredicate q = switch (c.toLowerCase(Locale.ROOT)) {
                    case "letter" -> Character::isLetter;
                    case "digit" -> Character::isDigit;
                    case "whitespace" -> Character::isWhitespace;
                    case "punctuation" -> ch -> switch (Character.getType(ch)) {
                        case Character.START_PUNCTUATION, Character.END_PUNCTUATION, Character.OTHER_PUNCTUATION,
                            Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION,
                            Character.FINAL_QUOTE_PUNCTUATION -> true;
                        default -> false;
                    };
                    case "symbol" -> ch -> switch (Character.getType(ch)) {
                        case Character.MATH_SYMBOL, Character.CURRENCY_SYMBOL, Character.MODIFIER_SYMBOL, Character.OTHER_SYMBOL -> true;
                        default -> false;
                    };
                    case "custom" -> ch -> custom.indexOf(ch) >= 0;
                    default -> throw new IllegalArgumentException("Unknown token type: '" + c + "'");
                };
                p = p == null ? q : p.or(q);
            }
            tokenChar = p;
        }

        @Override
        public Tokenizer create() {
            if (tokenChar == null) {
                return edge ? new EdgeNGramTokenizer(minGram, maxGram) : new NGramTokenizer(minGram, maxGram);
            }
            IntPredicate p = tokenChar;
            if (edge) {
                return new EdgeNGramTokenizer(minGram, maxGram) {
                    @Override
                    protected boolean isTokenChar(int chr) {
                        return p.test(chr);
                    }
                };
            }
            return new NGramTokenizer(minGram, maxGram) {
                @Override
                protected boolean isTokenChar(int chr) {
                    return p.test(chr);
                }
            };
        }
    }
}
