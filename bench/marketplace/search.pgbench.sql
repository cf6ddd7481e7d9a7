-- The page query of GET /api/v1/tutors?q=<word>&sort=relevance&limit=20, as the app
-- sends it (captured by explain.py; parameters inlined). The app then runs two small
-- lookups for the page's subjects and languages, not included here.
\set w random(1, 15)
SELECT tutor_profiles.user_id, tutor_profiles.display_name, tutor_profiles.headline,
       tutor_profiles.time_zone,
       tutor_profiles.photo_ref, tutor_profiles.lesson_lengths, tutor_profiles.status,
       tutor_profiles.buffer_minutes, tutor_profiles.min_notice_minutes,
       tutor_profiles.horizon_days, tutor_profiles.rating_count, tutor_profiles.rating_avg,
       tutor_profiles.id, ts_rank(tutor_profiles.search_vector, q) AS sort_key
FROM tutor_profiles,
     to_tsquery('simple', (ARRAY['algebra:*','geometry:*','calculus:*','statistics:*','physics:*',
                                 'chemistry:*','biology:*','english:*','french:*','spanish:*',
                                 'german:*','python:*','piano:*','guitar:*','exam:*'])[:w]) AS q
WHERE tutor_profiles.status = 'approved' AND tutor_profiles.search_vector @@ q
ORDER BY ts_rank(tutor_profiles.search_vector, q) DESC, tutor_profiles.id DESC
LIMIT 21;
