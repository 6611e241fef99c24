package dev.polyshop.esshim;

import java.io.IOException;
import java.io.StringReader;
import java.text.ParseException;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Pattern;
import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.TokenFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.compound.DictionaryCompoundWordTokenFilter;
import org.apache.lucene.analysis.core.FlattenGraphFilter;
import org.apache.lucene.analysis.core.UpperCaseFilter;
import org.apache.lucene.analysis.en.EnglishMinimalStemFilter;
import org.apache.lucene.analysis.en.EnglishPossessiveFilter;
import org.apache.lucene.analysis.en.KStemFilter;
import org.apache.lucene.analysis.en.PorterStemFilter;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.miscellaneous.LengthFilter;
import org.apache.lucene.analysis.miscellaneous.PatternKeywordMarkerFilter;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.apache.lucene.analysis.miscellaneous.SetKeywordMarkerFilter;
import org.apache.lucene.analysis.miscellaneous.StemmerOverrideFilter;
import org.apache.lucene.analysis.miscellaneous.TrimFilter;
import org.apache.lucene.analysis.miscellaneous.WordDelimiterFilter;
import org.apache.lucene.analysis.miscellaneous.WordDelimiterGraphFilter;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenFilter;
import org.apache.lucene.analysis.ngram.NGramTokenFilter;
import org.apache.lucene.analysis.pattern.PatternReplaceFilter;
import org.apache.lucene.analysis.snowball.SnowballFilter;
import org.apache.lucene.analysis.synonym.SolrSynonymParser;
import org.apache.lucene.analysis.synonym.SynonymGraphFilter;
import org.apache.lucene.analysis.synonym.SynonymMap;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.util.CharsRef;
import org.apache.lucene.util.CharsRefBuilder;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexService.IndexCreationContext;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;
import org.elasticsearch.index.analysis.AnalysisMode;
import org.elasticsearch.index.analysis.CharFilterFactory;
import org.elasticsearch.index.analysis.CustomAnalyzer;
import org.elasticsearch.index.analysis.NormalizingTokenFilterFactory;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.tartarus.snowball.ext.EnglishStemmer;

/** Token filters of analysis-common, rebuilt on Lucene's published classes. */
final class Filters {
    private Filters() {}

    static Map<String, AnalysisProvider<TokenFilterFactory>> all() {
        Map<String, AnalysisProvider<TokenFilterFactory>> m = new HashMap<>();
        m.put("asciifolding", AsciiFolding::new);
        m.put("stemmer", Stemmer::new);
        m.put("porter_stem", (is, env, name, s) -> simple(name, s, PorterStemFilter::new));
        m.put("kstem", (is, env, name, s) -> simple(name, s, KStemFilter::new));
        m.put("snowball", Snowball::new);
        m.put("uppercase", (is, env, name, s) -> normalizing(name, s, UpperCaseFilter::new));
        m.put("trim", (is, env, name, s) -> normalizing(name, s, TrimFilter::new));
        m.put("flatten_graph", (is, env, name, s) -> simple(name, s, FlattenGraphFilter::new));
        m.put("word_delimiter_graph", (is, env, name, s) -> new WordDelimiter(name, s, true));
        m.put("word_delimiter", (is, env, name, s) -> new WordDelimiter(name, s, false));
        m.put("synonym_graph", AnalysisPlugin.requiresAnalysisSettings((is, env, name, s) -> new Synonyms(env, name, s, true)));
        m.put("synonym", AnalysisPlugin.requiresAnalysisSettings((is, env, name, s) -> new Synonyms(env, name, s, false)));
        m.put("edge_ngram", (is, env, name, s) -> new NGrams(is, name, s, true));
        m.put("ngram", (is, env, name, s) -> new NGrams(is, name, s, false));
        m.put("length", Length::new);
        m.put("unique", Unique::new);
        m.put("keyword_marker", AnalysisPlugin.requiresAnalysisSettings(KeywordMarker::new));
        m.put("pattern_replace", AnalysisPlugin.requiresAnalysisSettings(PatternReplace::new));
        m.put("stemmer_override", AnalysisPlugin.requiresAnalysisSettings(StemmerOverride::new));
        m.put("dictionary_decompounder", AnalysisPlugin.requiresAnalysisSettings(Decompounder::new));
        return Map.copyOf(m);
    }

    private static TokenFilterFactory simple(String name, Settings s, Function<TokenStream, TokenStream> f) {
        Params.allow(name, s);
        return new AbstractTokenFilterFactory(name) {
            @Override
            public TokenStream create(TokenStream in) {
                return f.apply(in);
            }
        };
    }

    private static TokenFilterFactory normalizing(String name, Settings s, Function<TokenStream, TokenStream> f) {
        Params.allow(name, s);
        final class Factory extends AbstractTokenFilterFactory implements NormalizingTokenFilterFactory {
            Factory() {
                super(name);
            }

            @Override
            public TokenStream create(TokenStream in) {
                return f.apply(in);
            }
        }
        return new Factory();
    }

    static final class AsciiFolding extends AbstractTokenFilterFactory implements NormalizingTokenFilterFactory {
        private final boolean preserveOriginal;

        AsciiFolding(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "preserve_original");
            preserveOriginal = Params.bool(s, "preserve_original", false);
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new ASCIIFoldingFilter(in, preserveOriginal);
        }

        @Override
        public TokenStream normalize(TokenStream in) {
            return new ASCIIFoldingFilter(in, false); // one token per input, as ES does
        }
    }

    static final class Stemmer extends AbstractTokenFilterFactory {
        private final Function<TokenStream, TokenStream> stemmer;

        Stemmer(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "language", "name");
            String language = s.get("language", s.get("name", "porter")).toLowerCase(Locale.ROOT);
            stemmer = switch (language) {
                case "english", "porter" -> PorterStemFilter::new;
                case "porter2" -> in -> new SnowballFilter(in, new EnglishStemmer());
                case "light_english", "kstem" -> KStemFilter::new;
                case "minimal_english" -> EnglishMinimalStemFilter::new;
                case "possessive_english" -> EnglishPossessiveFilter::new;
                default -> throw new IllegalArgumentException(
                    "[" + name + "]: stemmer language [" + language + "] is not supported by the polyshop devstack shim"
                        + " (english, porter, porter2, light_english, kstem, minimal_english, possessive_english)"
                );
            };
        }

        @Override
        public TokenStream create(TokenStream in) {
            return stemmer.apply(in);
        }
    }

    static final class Snowball extends AbstractTokenFilterFactory {
        Snowball(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "language");
            String language = s.get("language", "English");
            if (!language.equalsIgnoreCase("english")) {
                throw new IllegalArgumentException("[" + name + "]: only the English snowball stemmer is in the shim");
            }
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new SnowballFilter(in, new EnglishStemmer());
        }
    }

    static final class WordDelimiter extends AbstractTokenFilterFactory {
        private final boolean graph;
        private final int flags;
        private final boolean adjustOffsets;
        private final CharArraySet protectedWords;

        WordDelimiter(String name, Settings s, boolean graph) {
            super(name);
            Params.allow(
                name, s, "generate_word_parts", "generate_number_parts", "catenate_words", "catenate_numbers",
                "catenate_all", "split_on_case_change", "preserve_original", "split_on_numerics",
                "stem_english_possessive", "protected_words", "adjust_offsets", "ignore_keywords"
            );
            this.graph = graph;
            int f = 0;
            f |= flag(s, "generate_word_parts", true, WordDelimiterGraphFilter.GENERATE_WORD_PARTS);
            f |= flag(s, "generate_number_parts", true, WordDelimiterGraphFilter.GENERATE_NUMBER_PARTS);
            f |= flag(s, "catenate_words", false, WordDelimiterGraphFilter.CATENATE_WORDS);
            f |= flag(s, "catenate_numbers", false, WordDelimiterGraphFilter.CATENATE_NUMBERS);
            f |= flag(s, "catenate_all", false, WordDelimiterGraphFilter.CATENATE_ALL);
            f |= flag(s, "split_on_case_change", true, WordDelimiterGraphFilter.SPLIT_ON_CASE_CHANGE);
            f |= flag(s, "preserve_original", false, WordDelimiterGraphFilter.PRESERVE_ORIGINAL);
            f |= flag(s, "split_on_numerics", true, WordDelimiterGraphFilter.SPLIT_ON_NUMERICS);
            f |= flag(s, "stem_english_possessive", true, WordDelimiterGraphFilter.STEM_ENGLISH_POSSESSIVE);
            f |= flag(s, "ignore_keywords", false, WordDelimiterGraphFilter.IGNORE_KEYWORDS);
            flags = f;
            adjustOffsets = Params.bool(s, "adjust_offsets", true);
            List<String> words = s.getAsList("protected_words", List.of());
            protectedWords = words.isEmpty() ? null : new CharArraySet(words, false);
        }

        private static int flag(Settings s, String key, boolean defaultValue, int bit) {
            return Params.bool(s, key, defaultValue) ? bit : 0;
        }

        @Override
        public TokenStream create(TokenStream in) {
            if (graph) {
                return new WordDelimiterGraphFilter(
                    in, adjustOffsets, org.apache.lucene.analysis.miscellaneous.WordDelimiterIterator.DEFAULT_WORD_DELIM_TABLE,
                    flags, protectedWords
                );
            }
            return new WordDelimiterFilter(in, flags, protectedWords);
        }
    }

    /** synonym_graph / synonym: Solr-format rules, inline ({@code synonyms}) or from a file
     * relative to the config dir ({@code synonyms_path}), parsed with the analysis chain
     * that precedes the filter (as Elasticsearch does). */
    static final class Synonyms extends AbstractTokenFilterFactory {
        private final Environment env;
        private final Settings settings;
        private final boolean graph;
        private final boolean lenient;
        private final boolean expand;
        private final boolean updateable;

        Synonyms(Environment env, String name, Settings s, boolean graph) {
            super(name);
            Params.allow(name, s, "synonyms", "synonyms_path", "lenient", "expand", "updateable", "format", "ignore_case");
            String format = s.get("format", "solr");
            if (!format.equals("solr")) {
                throw new IllegalArgumentException("[" + name + "]: only the solr synonym format is in the shim");
            }
            if (Params.lines(env, s, "synonyms", "synonyms_path") == null) {
                throw new IllegalArgumentException("synonym requires either `synonyms`, `synonyms_set` or `synonyms_path` to be configured");
            }
            this.env = env;
            this.settings = s;
            this.graph = graph;
            this.lenient = Params.bool(s, "lenient", false);
            this.expand = Params.bool(s, "expand", true);
            this.updateable = Params.bool(s, "updateable", false);
        }

        @Override
        public AnalysisMode getAnalysisMode() {
            return updateable ? AnalysisMode.SEARCH_TIME : AnalysisMode.ALL;
        }

        @Override
        public TokenStream create(TokenStream in) {
            throw new IllegalStateException("Call getChainAwareTokenFilterFactory to specialize this factory for an analysis chain first");
        }

        @Override
        public TokenFilterFactory getChainAwareTokenFilterFactory(
            IndexCreationContext context,
            TokenizerFactory tokenizer,
            List<CharFilterFactory> charFilters,
            List<TokenFilterFactory> previous,
            Function<String, TokenFilterFactory> allFilters
        ) {
            Analyzer analyzer = new CustomAnalyzer(
                tokenizer,
                charFilters.toArray(new CharFilterFactory[0]),
                previous.stream().map(TokenFilterFactory::getSynonymFilter).toArray(TokenFilterFactory[]::new)
            );
            SynonymMap map;
            try {
                LenientSolrParser parser = new LenientSolrParser(expand, analyzer, lenient);
                parser.parse(new StringReader(String.join("\n", Params.lines(env, settings, "synonyms", "synonyms_path"))));
                map = parser.build();
            } catch (IOException | ParseException e) {
                throw new IllegalArgumentException("failed to build synonyms: " + e.getMessage(), e);
            }
            String name = name();
            AnalysisMode mode = getAnalysisMode();
            boolean isGraph = graph;
            return new TokenFilterFactory() {
                @Override
                public String name() {
                    return name;
                }

                @Override
                public TokenStream create(TokenStream in) {
                    if (map.fst == null) {
                        return in;
                    }
                    if (isGraph) {
                        return new SynonymGraphFilter(in, map, false);
                    }
                    @SuppressWarnings("deprecation")
                    TokenStream out = new org.apache.lucene.analysis.synonym.SynonymFilter(in, map, false);
                    return out;
                }

                @Override
                public TokenFilterFactory getSynonymFilter() {
                    return IDENTITY_FILTER; // synonyms are not applied to other synonym rules
                }

                @Override
                public AnalysisMode getAnalysisMode() {
                    return mode;
                }
            };
        }
    }

    /** Solr rules; with {@code lenient}, a rule that the chain cannot analyse (e.g. it is
     * all stop words) is skipped rather than failing the index, like ESSolrSynonymParser. */
    static final class LenientSolrParser extends SolrSynonymParser {
        private final boolean lenient;

        LenientSolrParser(boolean expand, Analyzer analyzer, boolean lenient) {
            super(true, expand, analyzer);
            this.lenient = lenient;
        }

        @Override
        public void add(CharsRef input, CharsRef output, boolean includeOrig) {
            if (lenient && (input.length == 0 || output.length == 0)) {
                return;
            }
            super.add(input, output, includeOrig);
        }

        @Override
        public CharsRef analyze(String text, CharsRefBuilder reuse) throws IOException {
            try {
                return super.analyze(text, reuse);
            } catch (IllegalArgumentException e) {
                if (lenient) {
                    reuse.clear();
                    return reuse.get();
                }
                throw e;
            }
        }
    }

    static final class NGrams extends AbstractTokenFilterFactory {
        private final boolean edge;
        private final int minGram;
        private final int maxGram;
        private final boolean preserveOriginal;

        NGrams(IndexSettings is, String name, Settings s, boolean edge) {
            super(name);
            Params.allow(name, s, "min_gram", "max_gram", "preserve_original", "side");
            this.edge = edge;
            minGram = Params.intValue(s, "min_gram", 1);
            maxGram = Params.intValue(s, "max_gram", 2);
            preserveOriginal = Params.bool(s, "preserve_original", false);
            if (!s.get("side", "front").equals("front")) {
                throw new IllegalArgumentException("[" + name + "]: side must be front");
            }
            if (!edge && is != null && maxGram - minGram > is.getMaxNgramDiff()) {
                throw new IllegalArgumentException(
                    "The difference between max_gram and min_gram in NGram Tokenizer must be less than or equal to: ["
                        + is.getMaxNgramDiff() + "] but was [" + (maxGram - minGram) + "]. This limit can be set by changing the ["
                        + IndexSettings.MAX_NGRAM_DIFF_SETTING.getKey() + "] index level setting."
                );
            }
        }

        @Override
        public TokenStream create(TokenStream in) {
            return edge
                ? new EdgeNGramTokenFilter(in, minGram, maxGram, preserveOriginal)
                : new NGramTokenFilter(in, minGram, maxGram, preserveOriginal);
        }
    }

    static final class Length extends AbstractTokenFilterFactory {
        private final int min;
        private final int max;

        Length(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "min", "max");
            min = Params.intValue(s, "min", 0);
            max = Params.intValue(s, "max", Integer.MAX_VALUE);
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new LengthFilter(in, min, max);
        }
    }

    static final class Unique extends AbstractTokenFilterFactory {
        private final boolean samePosition;

        Unique(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "only_on_same_position");
            samePosition = Params.bool(s, "only_on_same_position", false);
        }

        @Override
        public TokenStream create(TokenStream in) {
            return samePosition ? new RemoveDuplicatesTokenFilter(in) : new UniqueTokenFilter(in);
        }
    }

    /** Drops every token whose text was seen before in the stream. */
    static final class UniqueTokenFilter extends TokenFilter {
        private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
        private final CharArraySet seen = new CharArraySet(8, false);

        UniqueTokenFilter(TokenStream in) {
            super(in);
        }

        @Override
        public boolean incrementToken() throws IOException {
            while (input.incrementToken()) {
                char[] chars = term.buffer();
                int length = term.length();
                if (!seen.contains(chars, 0, length)) {
                    char[] copy = new char[length];
                    System.arraycopy(chars, 0, copy, 0, length);
                    seen.add(copy);
                    return true;
                }
            }
            return false;
        }

        @Override
        public void reset() throws IOException {
            super.reset();
            seen.clear();
        }
    }

    static final class KeywordMarker extends AbstractTokenFilterFactory {
        private final CharArraySet keywords;
        private final Pattern pattern;

        KeywordMarker(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "keywords", "keywords_path", "keywords_pattern", "ignore_case");
            boolean ignoreCase = Params.bool(s, "ignore_case", false);
            String patternText = s.get("keywords_pattern");
            List<String> words = Params.lines(env, s, "keywords", "keywords_path");
            if (patternText != null && words != null) {
                throw new IllegalArgumentException("cannot specify both `keywords_pattern` and `keywords` or `keywords_path`");
            }
            if (patternText == null && words == null) {
                throw new IllegalArgumentException("keyword filter requires either `keywords`, `keywords_path`, or `keywords_pattern` to be configured");
            }
            pattern = patternText == null ? null : Pattern.compile(patternText);
            keywords = words == null ? null : new CharArraySet(words, ignoreCase);
        }

        @Override
        public TokenStream create(TokenStream in) {
            return pattern != null ? new PatternKeywordMarkerFilter(in, pattern) : new SetKeywordMarkerFilter(in, keywords);
        }
    }

    static final class PatternReplace extends AbstractTokenFilterFactory implements NormalizingTokenFilterFactory {
        private final Pattern pattern;
        private final String replacement;
        private final boolean all;

        PatternReplace(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "pattern", "replacement", "all", "flags");
            String p = s.get("pattern");
            if (p == null) {
                throw new IllegalArgumentException("pattern is missing for [" + name + "] token filter of type 'pattern_replace'");
            }
            pattern = Pattern.compile(p, CharFilters.regexFlags(s.get("flags", "")));
            replacement = s.get("replacement", "");
            all = Params.bool(s, "all", true);
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new PatternReplaceFilter(in, pattern, replacement, all);
        }
    }

    static final class StemmerOverride extends AbstractTokenFilterFactory {
        private final StemmerOverrideFilter.StemmerOverrideMap map;

        StemmerOverride(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "rules", "rules_path");
            List<String> rules = Params.lines(env, s, "rules", "rules_path");
            if (rules == null) {
                throw new IllegalArgumentException("stemmer override filter requires either `rules` or `rules_path` to be configured");
            }
            StemmerOverrideFilter.Builder builder = new StemmerOverrideFilter.Builder(false);
            for (String rule : rules) {
                String[] sides = rule.split("=>", 2);
                if (sides.length != 2 || sides[1].trim().isEmpty()) {
                    throw new IllegalArgumentException("Invalid Keyword override Rule:" + rule);
                }
                for (String key : sides[0].split(",")) {
                    if (!key.trim().isEmpty()) {
                        builder.add(key.trim(), sides[1].trim());
                    }
                }
            }
            try {
                map = builder.build();
            } catch (IOException e) {
                throw new IllegalArgumentException("failed to build stemmer overrides", e);
            }
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new StemmerOverrideFilter(in, map);
        }
    }

    static final class Decompounder extends AbstractTokenFilterFactory {
        private final CharArraySet words;
        private final int minWordSize;
        private final int minSubwordSize;
        private final int maxSubwordSize;
        private final boolean onlyLongestMatch;

        Decompounder(IndexSettings is, Environment env, String name, Settings s) {
            super(name);
            Params.allow(name, s, "word_list", "word_list_path", "min_word_size", "min_subword_size", "max_subword_size", "only_longest_match");
            List<String> list = Params.lines(env, s, "word_list", "word_list_path");
            if (list == null) {
                throw new IllegalArgumentException("word_list must be provided for [" + name + "], either as a path to a file, or directly");
            }
            words = new CharArraySet(list, true);
            minWordSize = Params.intValue(s, "min_word_size", DictionaryCompoundWordTokenFilter.DEFAULT_MIN_WORD_SIZE);
            minSubwordSize = Params.intValue(s, "min_subword_size", DictionaryCompoundWordTokenFilter.DEFAULT_MIN_SUBWORD_SIZE);
            maxSubwordSize = Params.intValue(s, "max_subword_size", DictionaryCompoundWordTokenFilter.DEFAULT_MAX_SUBWORD_SIZE);
            onlyLongestMatch = Params.bool(s, "only_longest_match", false);
        }

        @Override
        public TokenStream create(TokenStream in) {
            return new DictionaryCompoundWordTokenFilter(in, words, minWordSize, minSubwordSize, maxSubwordSize, onlyLongestMatch);
        }
    }

}
