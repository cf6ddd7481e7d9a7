-- The SQL of GET /api/v1/tutors?q=<word>&sort=relevance&limit=20 (the page query the
-- app sends; the app then runs two small lookups for the page's subjects and languages).
\set w random(1, 15)
SELECT tutor_profiles.id, tutor_profiles.display_name, tutor_profiles.headline,
       tutor_profiles.hourly_rate_minor, tutor_profiles.currency, tutor_profiles.rating_avg,
       tutor_profiles.rating_count, tutor_profiles.photo_ref, tutor_profiles.time_zone,
       ts_rank(tutor_profiles.search_vector, q) AS sort_key
FROM tutor_profiles,
     to_tsquery('simple', (ARRAY['algebra:*','geometry:*','calculus:*','statistics:*','physics:*',
                                 'chemistry:*','biology:*','english:*','french:*','spanish:*',
                                 'german:*','python:*','piano:*','guitar:*','exam:*'])[:w]) AS q
WHERE tutor_profiles.status = 'approved' AND tutor_profiles.search_vector @@ q
ORDER BY sort_key DESC, tutor_profiles.id DESC
LIMIT 21;
